"""The first frame of a push connection: every car the user may see, where it is and how it is.

"May see" is the one access rule (`vehicles.access_clause`): own cars plus the cars of fleets
the user operates. Each car also says which fleet it is in and, when it is not the user's,
whose it is, so an operator's console can tell the cars apart.

Why a bulk read here rather than `telemetry.latest_location` per car: a console for a
1 000-car fleet would otherwise open with 1 000 queries. Three queries answer it whatever
the fleet size: the cars, their four map signals from `latest_state`, and recent alert events.
After this frame, the push hub only sends what changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from chelian.storage.repositories.vehicles import access_clause
from chelian.storage.tables import events, latest_state, users, vehicles
from chelian.storage.tables_fleets import fleet_vehicles, fleets
from chelian.web.push import ALERT_EVENTS, ALERT_WINDOW_MS, PUSHED_SIGNALS


def fleet_snapshot(conn: Connection, user_id: int, now_ms: int) -> list[dict[str, Any]]:
    """One dict per car `user_id` may see (the keys the hub pushes, plus `name`, `fleet` and
    `owner`: the owner's e-mail, None for the user's own cars), ordered by VIN."""
    v = vehicles.c
    cars: dict[int, dict[str, Any]] = {}
    joined = (vehicles.join(users, users.c.id == v.owner_id)
              .outerjoin(fleet_vehicles, fleet_vehicles.c.vehicle_id == v.id)
              .outerjoin(fleets, fleets.c.id == fleet_vehicles.c.fleet_id))
    rows = conn.execute(select(v.id, v.vin, v.make, v.model, v.year, v.online, v.owner_id, users.c.email,
                               fleets.c.name)
                        .select_from(joined).where(access_clause(user_id)).order_by(v.vin))
    for vid, vin, make, model, year, online, owner_id, owner_email, fleet in rows:
        cars[vid] = {"vin": vin, "name": f"{year} {make} {model}", "online": bool(online), "alert": None,
                     "fleet": fleet, "owner": None if owner_id == user_id else owner_email}
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
