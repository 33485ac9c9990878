"""The first frame of a push connection: every car of the user, where it is and how it is.

Why a bulk read here rather than `telemetry.latest_location` per car: a console for a
1 000-car fleet would otherwise open with 1 000 queries. Three queries answer it whatever
the fleet size: the cars, their four map signals from `latest_state`, and recent alert events.
After this frame, the push hub only sends what changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from chelian.storage.tables import events, latest_state, vehicles
from chelian.web.push import ALERT_EVENTS, ALERT_WINDOW_MS, PUSHED_SIGNALS


def fleet_snapshot(conn: Connection, owner_id: int, now_ms: int) -> list[dict[str, Any]]:
    """One dict per car of `owner_id` (the same keys the hub pushes), ordered by VIN."""
    v = vehicles.c
    cars: dict[int, dict[str, Any]] = {}
    rows = conn.execute(select(v.id, v.vin, v.make, v.model, v.year, v.online)
                        .where(v.owner_id == owner_id).order_by(v.vin))
    for vid, vin, make, model, year, online in rows:
        cars[vid] = {"vin": vin, "name": f"{year} {make} {model}", "online": bool(online), "alert": None}
    if not cars:
        return []
    s = latest_state.c
    rows = conn.execute(select(s.vehicle_id, s.path, s.value_num, s.ts_ms)
                        .where(s.vehicle_id.in_(list(cars)), s.path.in_(list(PUSHED_SIGNALS))))
    for vid, path, value, ts_ms in rows:
        car = cars[vid]
        car[PUSHED_SIGNALS[path]] = value
        car["ts_ms"] = max(car.get("ts_ms", 0), ts_ms)
    e = events.c
    alerts = conn.execute(select(e.vehicle_id, e.type, e.ts_ms)
                          .where(e.vehicle_id.in_(list(cars)), e.type.in_(ALERT_EVENTS),
                                 e.ts_ms >= now_ms - ALERT_WINDOW_MS)
                          .order_by(e.ts_ms))
    for vid, type_, ts_ms in alerts:
        cars[vid]["alert"] = {"type": type_, "ts_ms": ts_ms}
    return list(cars.values())
