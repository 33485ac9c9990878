"""Trouble codes per car (latest status of each code) and maintenance plans."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from chelian.storage.tables_rules import dtcs, maintenance_plans

ACTIVE, PENDING, CLEARED = "active", "pending", "cleared"
OPEN_STATUSES = (ACTIVE, PENDING)


@dataclass(frozen=True, slots=True)
class DtcRow:
    code: str
    status: str
    first_seen_ms: int
    last_seen_ms: int
    cleared_ms: int | None
    freeze_frame: dict[str, Any] | None


_DTC = (dtcs.c.code, dtcs.c.status, dtcs.c.first_seen_ms, dtcs.c.last_seen_ms, dtcs.c.cleared_ms,
        dtcs.c.freeze_frame)


def for_vehicle(conn: Connection, vehicle_id: int, open_only: bool = False) -> list[DtcRow]:
    query = select(*_DTC).where(dtcs.c.vehicle_id == vehicle_id)
    if open_only:
        query = query.where(dtcs.c.status.in_(OPEN_STATUSES))
    return [DtcRow(*row) for row in conn.execute(query.order_by(dtcs.c.code))]


def open_codes(conn: Connection, vehicle_id: int) -> dict[str, str]:
    return {code: status for code, status in conn.execute(
        select(dtcs.c.code, dtcs.c.status).where(dtcs.c.vehicle_id == vehicle_id,
                                                  dtcs.c.status.in_(OPEN_STATUSES)))}


def open_codes_many(conn: Connection, vehicle_ids: list[int]) -> dict[int, dict[str, str]]:
    """Open codes of several cars in one query; every asked car has an entry (maybe empty)."""
    out: dict[int, dict[str, str]] = {v: {} for v in vehicle_ids}
    for vid, code, status in conn.execute(
            select(dtcs.c.vehicle_id, dtcs.c.code, dtcs.c.status)
            .where(dtcs.c.vehicle_id.in_(vehicle_ids), dtcs.c.status.in_(OPEN_STATUSES))):
        out[vid][code] = status
    return out


def save(conn: Connection, vehicle_id: int, code: str, status: str, ts_ms: int,
         freeze_frame: dict[str, Any] | None = None) -> None:
    """Record a code's new status; a code reported again after being cleared starts afresh."""
    c = dtcs.c
    row = conn.execute(select(c.status, c.first_seen_ms)
                       .where(c.vehicle_id == vehicle_id, c.code == code)).first()
    if status == CLEARED:
        if row is not None:
            conn.execute(update(dtcs).where(c.vehicle_id == vehicle_id, c.code == code)
                         .values(status=CLEARED, cleared_ms=ts_ms, last_seen_ms=ts_ms))
        return
    first = row[1] if row is not None and row[0] != CLEARED else ts_ms
    if row is not None:
        conn.execute(delete(dtcs).where(c.vehicle_id == vehicle_id, c.code == code))
    conn.execute(insert(dtcs).values(vehicle_id=vehicle_id, code=code, status=status, first_seen_ms=first,
                                     last_seen_ms=ts_ms, cleared_ms=None, freeze_frame=freeze_frame))


@dataclass(frozen=True, slots=True)
class Plan:
    id: int
    vehicle_id: int
    name: str
    every_km: float | None
    every_days: float | None
    last_done_km: float | None
    last_done_ms: int
    notified_ms: int | None


_PLAN = (maintenance_plans.c.id, maintenance_plans.c.vehicle_id, maintenance_plans.c.name,
         maintenance_plans.c.every_km, maintenance_plans.c.every_days, maintenance_plans.c.last_done_km,
         maintenance_plans.c.last_done_ms, maintenance_plans.c.notified_ms)


def add_plan(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(maintenance_plans).values(**values).returning(maintenance_plans.c.id))
               .scalar_one())


def plans(conn: Connection, vehicle_id: int | None = None) -> list[Plan]:
    query = select(*_PLAN)
    if vehicle_id is not None:
        query = query.where(maintenance_plans.c.vehicle_id == vehicle_id)
    return [Plan(*row) for row in conn.execute(query.order_by(maintenance_plans.c.id))]


def mark_notified(conn: Connection, plan_id: int, ts_ms: int) -> None:
    conn.execute(update(maintenance_plans).where(maintenance_plans.c.id == plan_id).values(notified_ms=ts_ms))


def mark_done(conn: Connection, vehicle_id: int, plan_id: int, done_km: float | None, done_ms: int) -> bool:
    c = maintenance_plans.c
    result = conn.execute(update(maintenance_plans).where(c.id == plan_id, c.vehicle_id == vehicle_id)
                          .values(last_done_km=done_km, last_done_ms=done_ms, notified_ms=None))
    return result.rowcount > 0
