"""Geofences (owner's or one car's) and each car's confirmed inside state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select

from chelian.storage.tables_rules import geofence_states, geofences


@dataclass(frozen=True, slots=True)
class GeofenceRow:
    id: int
    owner_id: int
    vehicle_id: int | None
    name: str
    kind: str
    center_lat: float | None
    center_lon: float | None
    radius_m: float | None
    geometry: dict[str, Any] | None
    created_ms: int


_COLS = (geofences.c.id, geofences.c.owner_id, geofences.c.vehicle_id, geofences.c.name, geofences.c.kind,
         geofences.c.center_lat, geofences.c.center_lon, geofences.c.radius_m, geofences.c.geometry,
         geofences.c.created_ms)


def create(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(geofences).values(**values).returning(geofences.c.id)).scalar_one())


def all_fences(conn: Connection) -> list[GeofenceRow]:
    return [GeofenceRow(*row) for row in conn.execute(select(*_COLS).order_by(geofences.c.id))]


def for_owner(conn: Connection, owner_id: int, vehicle_id: int | None = None) -> list[GeofenceRow]:
    query = select(*_COLS).where(geofences.c.owner_id == owner_id)
    if vehicle_id is not None:
        query = query.where(or_(geofences.c.vehicle_id == vehicle_id, geofences.c.vehicle_id.is_(None)))
    return [GeofenceRow(*row) for row in conn.execute(query.order_by(geofences.c.id))]


def owned(conn: Connection, owner_id: int, fence_id: int) -> GeofenceRow | None:
    c = geofences.c
    row = conn.execute(select(*_COLS).where(c.id == fence_id, c.owner_id == owner_id)).first()
    return GeofenceRow(*row) if row else None


def delete_owned(conn: Connection, owner_id: int, fence_id: int) -> bool:
    conn.execute(delete(geofence_states).where(geofence_states.c.geofence_id == fence_id))
    c = geofences.c
    result = conn.execute(delete(geofences).where(c.id == fence_id, c.owner_id == owner_id))
    return result.rowcount > 0


def version(conn: Connection) -> tuple[int, int]:
    """(count, max id): changes whenever a fence is added or removed, for a cheap poll."""
    count, top = conn.execute(select(func.count(), func.max(geofences.c.id))).one()
    return int(count), int(top or 0)


def inside_states(conn: Connection) -> list[tuple[int, int]]:
    """(vehicle_id, geofence_id) of every car confirmed inside a fence."""
    c = geofence_states.c
    return [(v, g) for v, g in conn.execute(select(c.vehicle_id, c.geofence_id).where(c.inside.is_(True)))]


def save_transitions(conn: Connection, transitions: list[tuple[int, int, int, bool]]) -> None:
    """(vehicle_id, geofence_id, ts_ms, inside) in order: an entry adds the row, an exit removes it."""
    c = geofence_states.c
    for vehicle_id, fence_id, ts_ms, inside in transitions:
        conn.execute(delete(geofence_states).where(c.vehicle_id == vehicle_id, c.geofence_id == fence_id))
        if inside:
            conn.execute(insert(geofence_states).values(vehicle_id=vehicle_id, geofence_id=fence_id,
                                                        inside=True, since_ms=ts_ms))
