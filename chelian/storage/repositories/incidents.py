"""Crash incidents and their history (every transition and note, with who made it)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from chelian.storage.repositories.notifications import insert_ignoring_duplicates
from chelian.storage.tables_safety import incident_updates, incidents


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    vehicle_id: int
    key: str
    kind: str
    cause: str
    status: str
    detected_ms: int
    opened_ms: int
    grace_until_ms: int
    updated_ms: int
    latitude: float | None
    longitude: float | None
    speed_before_kmh: float | None
    heading: float | None
    occupants: int | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    id: int
    incident_id: int
    ts_ms: int
    status: str
    actor: str
    note: str | None


def in_window(conn: Connection, vehicle_id: int, ts_ms: int, window_ms: int) -> Incident | None:
    """The car's incident detected within `window_ms` of `ts_ms`, if any (the same crash)."""
    t = incidents
    row = conn.execute(
        select(t)
        .where(
            t.c.vehicle_id == vehicle_id,
            t.c.detected_ms >= ts_ms - window_ms,
            t.c.detected_ms <= ts_ms + window_ms,
        )
        .order_by(t.c.detected_ms)
        .limit(1)
    ).first()
    return Incident(*row) if row else None


def insert_incident(conn: Connection, values: dict[str, Any]) -> Incident | None:
    """Insert unless `key` exists; the new incident, or None for a repeat."""
    if not insert_ignoring_duplicates(conn, incidents, [values], "key"):
        return None
    return by_key(conn, values["key"])


def by_key(conn: Connection, key: str) -> Incident | None:
    row = conn.execute(select(incidents).where(incidents.c.key == key)).first()
    return Incident(*row) if row else None


def get(conn: Connection, vehicle_id: int, incident_id: int) -> Incident | None:
    row = conn.execute(
        select(incidents).where(incidents.c.id == incident_id, incidents.c.vehicle_id == vehicle_id)
    ).first()
    return Incident(*row) if row else None


def for_vehicle(conn: Connection, vehicle_id: int, limit: int, status: str | None = None) -> list[Incident]:
    q = select(incidents).where(incidents.c.vehicle_id == vehicle_id)
    if status is not None:
        q = q.where(incidents.c.status == status)
    return [Incident(*r) for r in conn.execute(q.order_by(incidents.c.detected_ms.desc()).limit(limit))]


def set_status(
    conn: Connection, incident_id: int, allowed_from: Collection[str], status: str, now: int
) -> bool:
    """Move to `status` only from one of `allowed_from` (a compare-and-set: concurrent
    requests cannot both win); False when the incident was in another state."""
    t = incidents
    return (
        conn.execute(
            update(t)
            .where(t.c.id == incident_id, t.c.status.in_(list(allowed_from)))
            .values(status=status, updated_ms=now)
        ).rowcount
        == 1
    )


def add_update(
    conn: Connection, incident_id: int, ts_ms: int, status: str, actor: str, note: str | None
) -> None:
    conn.execute(
        insert(incident_updates).values(
            incident_id=incident_id, ts_ms=ts_ms, status=status, actor=actor, note=note
        )
    )


def updates(conn: Connection, incident_id: int) -> list[Update]:
    t = incident_updates
    return [
        Update(*r) for r in conn.execute(select(t).where(t.c.incident_id == incident_id).order_by(t.c.id))
    ]
