"""Stolen-vehicle reports and the positions a stolen car sent while reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from chelian.storage.repositories.notifications import insert_ignoring_duplicates
from chelian.storage.tables_safety import theft_reports, theft_track

ACTIVE, RECOVERED = "active", "recovered"


@dataclass(frozen=True, slots=True)
class TheftReport:
    id: int
    vehicle_id: int
    status: str
    reported_by: int | None
    reported_ms: int
    note: str | None
    immobilise_requested_ms: int | None
    immobilise_command_id: str | None
    recovered_ms: int | None
    recovery_note: str | None


@dataclass(frozen=True, slots=True)
class TrackPoint:
    seq: int
    ts_ms: int
    latitude: float
    longitude: float
    speed_kmh: float | None


def create(conn: Connection, vehicle_id: int, user_id: int, note: str | None, now: int) -> TheftReport:
    rid = conn.execute(
        insert(theft_reports)
        .values(vehicle_id=vehicle_id, status=ACTIVE, reported_by=user_id, reported_ms=now, note=note)
        .returning(theft_reports.c.id)
    ).scalar_one()
    return TheftReport(rid, vehicle_id, ACTIVE, user_id, now, note, None, None, None, None)


def active(conn: Connection, vehicle_id: int) -> TheftReport | None:
    t = theft_reports
    row = conn.execute(select(t).where(t.c.vehicle_id == vehicle_id, t.c.status == ACTIVE)).first()
    return TheftReport(*row) if row else None


def active_by_vehicle(conn: Connection, vehicle_ids: list[int]) -> dict[int, int]:
    """vehicle id -> active report id, for those of `vehicle_ids` reported stolen."""
    t = theft_reports
    rows = conn.execute(
        select(t.c.vehicle_id, t.c.id).where(t.c.status == ACTIVE, t.c.vehicle_id.in_(vehicle_ids))
    )
    return {vid: rid for vid, rid in rows}


def latest(conn: Connection, vehicle_id: int) -> TheftReport | None:
    t = theft_reports
    row = conn.execute(select(t).where(t.c.vehicle_id == vehicle_id).order_by(t.c.id.desc()).limit(1)).first()
    return TheftReport(*row) if row else None


def set_values(conn: Connection, report_id: int, **values: Any) -> bool:
    t = theft_reports
    return (
        conn.execute(update(t).where(t.c.id == report_id, t.c.status == ACTIVE).values(**values)).rowcount
        == 1
    )


def add_points(conn: Connection, report_id: int, points: list[TrackPoint]) -> int:
    """Store positions; a redelivered seq is skipped (returns how many were new)."""
    rows = [
        {
            "report_id": report_id,
            "seq": p.seq,
            "ts_ms": p.ts_ms,
            "latitude": p.latitude,
            "longitude": p.longitude,
            "speed_kmh": p.speed_kmh,
        }
        for p in points
    ]
    return insert_ignoring_duplicates(conn, theft_track, rows, "report_id", "seq")


def track(conn: Connection, report_id: int, limit: int = 10_000) -> list[TrackPoint]:
    t = theft_track
    rows = conn.execute(
        select(t.c.seq, t.c.ts_ms, t.c.latitude, t.c.longitude, t.c.speed_kmh)
        .where(t.c.report_id == report_id)
        .order_by(t.c.ts_ms, t.c.seq)
        .limit(limit)
    )
    return [TrackPoint(*r) for r in rows]
