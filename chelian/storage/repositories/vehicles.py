"""Vehicles, who may use them, and their broker credentials.

Who may use a car is one rule, written once here as `access_clause`: the cars a user owns
plus the cars in fleets the user operates. Every per-user read or command goes through it
(`accessible`, `visible_to`, the command routes' `caller_view`, the console's snapshot), and
`viewers_of` answers the same rule from the car's side for the push hub. Owning stays
distinct from using: `owned`/`for_owner` are for what only the legal owner may do.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, String, cast, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from chelian.errors import ConflictError
from chelian.storage.tables import vehicle_credentials, vehicles
from chelian.storage.tables_fleets import fleet_operators, fleet_vehicles


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
    """The vehicle if `owner_id` is its legal owner; None otherwise (callers answer 404, never 403).

    Only for what a fleet operator must not do (re-pinning the car's key); reading and
    commanding a car use `accessible`."""
    row = conn.execute(
        select(vehicles).where(vehicles.c.vin == vin, vehicles.c.owner_id == owner_id)
    ).first()
    return Vehicle(*row) if row else None


def for_owner(conn: Connection, owner_id: int) -> list[Vehicle]:
    rows = conn.execute(select(vehicles).where(vehicles.c.owner_id == owner_id).order_by(vehicles.c.vin))
    return [Vehicle(*r) for r in rows]


def access_clause(user_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    """True for the `vehicles` rows `user_id` may read and command: the cars the user owns,
    plus the cars in fleets the user operates. THE access rule; nothing else restates it.

    `user_id` may be a column (`users.c.id`): the fleet subquery then correlates to it, which
    is how `commands.caller_view` checks token, user and car in one statement.
    """
    operated = (select(fleet_vehicles.c.vehicle_id)
                .join(fleet_operators, fleet_operators.c.fleet_id == fleet_vehicles.c.fleet_id)
                .where(fleet_operators.c.user_id == user_id))
    return or_(vehicles.c.owner_id == user_id, vehicles.c.id.in_(operated))


def accessible(conn: Connection, user_id: int, vin: str) -> Vehicle | None:
    """The vehicle if `user_id` owns it or operates its fleet; None otherwise (callers answer 404)."""
    row = conn.execute(select(vehicles).where(vehicles.c.vin == vin, access_clause(user_id))).first()
    return Vehicle(*row) if row else None


def visible_to(conn: Connection, user_id: int) -> list[Vehicle]:
    """Every car `user_id` may use (own plus operated fleets), ordered by VIN."""
    rows = conn.execute(select(vehicles).where(access_clause(user_id)).order_by(vehicles.c.vin))
    return [Vehicle(*r) for r in rows]


def viewers_of(conn: Connection, vehicle_ids: list[int]) -> dict[int, tuple[str, frozenset[int]]]:
    """vehicle_id -> (vin, the users who may see it): `access_clause` read from the car's side,
    for routing one car's update to everybody allowed to see it (the push hub)."""
    joined = (vehicles.outerjoin(fleet_vehicles, fleet_vehicles.c.vehicle_id == vehicles.c.id)
              .outerjoin(fleet_operators, fleet_operators.c.fleet_id == fleet_vehicles.c.fleet_id))
    rows = conn.execute(select(vehicles.c.id, vehicles.c.vin, vehicles.c.owner_id, fleet_operators.c.user_id)
                        .select_from(joined).where(vehicles.c.id.in_(vehicle_ids)))
    found: dict[int, tuple[str, set[int]]] = {}
    for vid, vin, owner_id, operator_id in rows:
        viewers = found.setdefault(vid, (vin, {owner_id}))[1]
        if operator_id is not None:
            viewers.add(operator_id)
    return {vid: (vin, frozenset(viewers)) for vid, (vin, viewers) in found.items()}


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
