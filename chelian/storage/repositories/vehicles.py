"""Vehicles, their owners' view of them, and their broker credentials."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, String, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from chelian.errors import ConflictError
from chelian.storage.tables import vehicle_credentials, vehicles


@dataclass(frozen=True, slots=True)
class Vehicle:
    id: int
    vin: str
    make: str
    model: str
    year: int
    owner_id: int
    created_ms: int
    online: bool
    status_ms: int | None


@dataclass(frozen=True, slots=True)
class CarCredential:
    vehicle_id: int
    vin: str
    username: str
    secret_hash: str


def create(conn: Connection, *, vin: str, make: str, model: str, year: int, owner_id: int,
           created_ms: int) -> Vehicle:
    try:
        vehicle_id = conn.execute(
            insert(vehicles).values(vin=vin, make=make, model=model, year=year, owner_id=owner_id,
                                    created_ms=created_ms, online=False).returning(vehicles.c.id)
        ).scalar_one()
    except IntegrityError as exc:
        raise ConflictError(f"vehicle {vin} is already registered") from exc
    return Vehicle(vehicle_id, vin, make, model, year, owner_id, created_ms, False, None)


def by_vin(conn: Connection, vin: str) -> Vehicle | None:
    row = conn.execute(select(vehicles).where(vehicles.c.vin == vin)).first()
    return Vehicle(*row) if row else None


def owned(conn: Connection, owner_id: int, vin: str) -> Vehicle | None:
    """The vehicle if `owner_id` owns it; None otherwise (callers answer 404, never 403)."""
    row = conn.execute(
        select(vehicles).where(vehicles.c.vin == vin, vehicles.c.owner_id == owner_id)
    ).first()
    return Vehicle(*row) if row else None


def for_owner(conn: Connection, owner_id: int) -> list[Vehicle]:
    rows = conn.execute(select(vehicles).where(vehicles.c.owner_id == owner_id).order_by(vehicles.c.vin))
    return [Vehicle(*r) for r in rows]


def ids_by_vin(conn: Connection, vins: list[str]) -> dict[str, int]:
    rows = conn.execute(select(vehicles.c.vin, vehicles.c.id).where(vehicles.c.vin.in_(vins)))
    return {vin: vid for vin, vid in rows}


def set_status(conn: Connection, vehicle_id: int, online: bool, status_ms: int) -> None:
    """Record online/offline unless a newer status is already stored (redeliveries arrive late)."""
    conn.execute(
        update(vehicles)
        .where(vehicles.c.id == vehicle_id)
        .where((vehicles.c.status_ms.is_(None)) | (vehicles.c.status_ms <= status_ms))
        .values(online=online, status_ms=status_ms)
    )


def count_online(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(vehicles).where(vehicles.c.online)).scalar_one()


def add_credential(conn: Connection, vehicle_id: int, username: str, secret_hash: str, created_ms: int) -> None:
    conn.execute(insert(vehicle_credentials).values(vehicle_id=vehicle_id, username=username,
                                                    secret_hash=secret_hash, created_ms=created_ms))


def revoke_credentials(conn: Connection, vehicle_id: int, revoked_ms: int) -> int:
    """Revoke a car's live credentials; the username is retired (suffixed) so it can be reissued."""
    c = vehicle_credentials.c
    return conn.execute(
        update(vehicle_credentials)
        .where(c.vehicle_id == vehicle_id, c.revoked_ms.is_(None))
        .values(revoked_ms=revoked_ms, username=c.username + "#" + cast(c.id, String))
    ).rowcount


def _credential_query():  # type: ignore[no-untyped-def]
    return (
        select(vehicle_credentials.c.vehicle_id, vehicles.c.vin, vehicle_credentials.c.username,
               vehicle_credentials.c.secret_hash)
        .join(vehicles, vehicles.c.id == vehicle_credentials.c.vehicle_id)
        .where(vehicle_credentials.c.revoked_ms.is_(None))
    )


def credential(conn: Connection, username: str) -> CarCredential | None:
    row = conn.execute(_credential_query().where(vehicle_credentials.c.username == username)).first()
    return CarCredential(*row) if row else None


def all_credentials(conn: Connection) -> list[CarCredential]:
    return [CarCredential(*r) for r in conn.execute(_credential_query().order_by(vehicles.c.vin))]
