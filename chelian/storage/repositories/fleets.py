"""Fleets, the cars in them and the users who operate them (rows only; rules in services/fleet).

Reads are batched by fleet (`cars_in`, `operators_of` take every fleet id at once), so a
listing of many fleets costs three queries, not three per fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from chelian.errors import ConflictError
from chelian.storage.tables import users, vehicles
from chelian.storage.tables_fleets import fleet_operators, fleet_vehicles, fleets


@dataclass(frozen=True, slots=True)
class Fleet:
    id: int
    name: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class FleetCar:
    """A car as its fleet's operators see it: enough to tell it apart, and whose it is."""

    vin: str
    make: str
    model: str
    year: int
    online: bool
    owner_email: str


def create(conn: Connection, name: str, created_ms: int) -> Fleet:
    try:
        fleet_id = conn.execute(insert(fleets).values(name=name, created_ms=created_ms)
                                .returning(fleets.c.id)).scalar_one()
    except IntegrityError as exc:
        raise ConflictError(f"a fleet named {name} already exists") from exc
    return Fleet(fleet_id, name, created_ms)


def by_name(conn: Connection, name: str) -> Fleet | None:
    row = conn.execute(select(fleets).where(fleets.c.name == name)).first()
    return Fleet(*row) if row else None


def every(conn: Connection) -> list[Fleet]:
    return [Fleet(*r) for r in conn.execute(select(fleets).order_by(fleets.c.name))]


def operated_by(conn: Connection, user_id: int) -> list[Fleet]:
    rows = conn.execute(select(fleets).join(fleet_operators, fleet_operators.c.fleet_id == fleets.c.id)
                        .where(fleet_operators.c.user_id == user_id).order_by(fleets.c.name))
    return [Fleet(*r) for r in rows]


def fleet_names_of(conn: Connection, vehicle_ids: list[int]) -> dict[int, str]:
    """vehicle_id -> the name of the fleet it is in (cars in no fleet are left out)."""
    rows = conn.execute(select(fleet_vehicles.c.vehicle_id, fleets.c.name)
                        .join(fleets, fleets.c.id == fleet_vehicles.c.fleet_id)
                        .where(fleet_vehicles.c.vehicle_id.in_(vehicle_ids)))
    return {vid: name for vid, name in rows}


def add_vehicle(conn: Connection, fleet_id: int, vehicle_id: int, added_ms: int) -> None:
    """Raises ConflictError if the car is already in a fleet (the primary key says at most one)."""
    try:
        conn.execute(insert(fleet_vehicles).values(fleet_id=fleet_id, vehicle_id=vehicle_id,
                                                   added_ms=added_ms))
    except IntegrityError as exc:
        raise ConflictError(f"vehicle {vehicle_id} is already in a fleet") from exc


def remove_vehicle(conn: Connection, fleet_id: int, vehicle_id: int) -> bool:
    c = fleet_vehicles.c
    return conn.execute(delete(fleet_vehicles).where(c.fleet_id == fleet_id, c.vehicle_id == vehicle_id)
                        ).rowcount > 0


def add_operator(conn: Connection, fleet_id: int, user_id: int, added_ms: int) -> bool:
    """False if the user already operates the fleet (adding twice is harmless)."""
    c = fleet_operators.c
    if conn.execute(select(c.user_id).where(c.fleet_id == fleet_id, c.user_id == user_id)).first():
        return False
    conn.execute(insert(fleet_operators).values(fleet_id=fleet_id, user_id=user_id, added_ms=added_ms))
    return True


def remove_operator(conn: Connection, fleet_id: int, user_id: int) -> bool:
    c = fleet_operators.c
    return conn.execute(delete(fleet_operators).where(c.fleet_id == fleet_id, c.user_id == user_id)
                        ).rowcount > 0


def cars_in(conn: Connection, fleet_ids: list[int]) -> dict[int, list[FleetCar]]:
    """fleet_id -> its cars ordered by VIN (every asked-for fleet has an entry, maybe empty)."""
    v = vehicles.c
    rows = conn.execute(select(fleet_vehicles.c.fleet_id, v.vin, v.make, v.model, v.year, v.online,
                               users.c.email)
                        .join(vehicles, v.id == fleet_vehicles.c.vehicle_id)
                        .join(users, users.c.id == v.owner_id)
                        .where(fleet_vehicles.c.fleet_id.in_(fleet_ids)).order_by(v.vin))
    out: dict[int, list[FleetCar]] = {fid: [] for fid in fleet_ids}
    for fid, vin, make, model, year, online, email in rows:
        out[fid].append(FleetCar(vin, make, model, year, bool(online), email))
    return out


def operators_of(conn: Connection, fleet_ids: list[int]) -> dict[int, list[str]]:
    """fleet_id -> its operators' e-mails, sorted."""
    rows = conn.execute(select(fleet_operators.c.fleet_id, users.c.email)
                        .join(users, users.c.id == fleet_operators.c.user_id)
                        .where(fleet_operators.c.fleet_id.in_(fleet_ids)).order_by(users.c.email))
    out: dict[int, list[str]] = {fid: [] for fid in fleet_ids}
    for fid, email in rows:
        out[fid].append(email)
    return out
