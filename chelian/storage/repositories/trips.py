"""Trips: open ones (with their accumulator) and finished ones, and a trip's GPS track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from chelian.storage.repositories.telemetry import LAT, LON
from chelian.storage.tables import telemetry
from chelian.storage.tables_rules import trips

MAX_TRACK_POINTS = 5000


@dataclass(frozen=True, slots=True)
class TripRow:
    id: int
    start_ms: int
    end_ms: int | None
    start_lat: float | None
    start_lon: float | None
    end_lat: float | None
    end_lon: float | None
    distance_m: float
    max_speed_kmh: float
    harsh_brakes: int
    harsh_accels: int
    fuel_used_pct: float | None
    fuel_used_l: float | None
    soc_used_pct: float | None
    score: float | None
    open: bool


_COLS = tuple(trips.c[name] for name in TripRow.__dataclass_fields__)


def start(conn: Connection, vehicle_id: int, start_ms: int, stats: dict[str, Any]) -> int:
    return start_many(conn, [(vehicle_id, start_ms, stats)])[0]


def start_many(conn: Connection, rows: list[tuple[int, int, dict[str, Any]]]) -> list[int]:
    """(vehicle_id, start_ms, stats) -> new trip ids in the same order, in one statement."""
    result = conn.execute(
        insert(trips).returning(trips.c.id, sort_by_parameter_order=True),
        [dict(vehicle_id=v, start_ms=ts, open=True, stats=stats, start_lat=stats.get("start_lat"),
              start_lon=stats.get("start_lon")) for v, ts, stats in rows])
    return [int(i) for i in result.scalars()]


def checkpoint(conn: Connection, trip_id: int, stats: dict[str, Any]) -> None:
    conn.execute(update(trips).where(trips.c.id == trip_id).values(stats=stats))


def finish(conn: Connection, trip_id: int, summary: dict[str, Any]) -> None:
    finish_many(conn, [(trip_id, summary)])


def finish_many(conn: Connection, items: list[tuple[int, dict[str, Any]]]) -> None:
    """Close several trips in one executemany (every summary has the same keys)."""
    if not items:
        return
    keys = list(items[0][1])
    stmt = (update(trips).where(trips.c.id == bindparam("trip_id"))
            .values(**{k: bindparam(f"v_{k}") for k in keys}, open=False, stats=None))
    conn.execute(stmt, [{"trip_id": tid, **{f"v_{k}": s[k] for k in keys}} for tid, s in items])


def open_trips(conn: Connection) -> list[tuple[int, int, dict[str, Any]]]:
    """(vehicle_id, trip id, stats) of every trip in progress."""
    return [(v, i, s or {}) for v, i, s in conn.execute(
        select(trips.c.vehicle_id, trips.c.id, trips.c.stats).where(trips.c.open.is_(True)))]


def for_vehicle(conn: Connection, vehicle_id: int, start_ms: int, end_ms: int, limit: int) -> list[TripRow]:
    c = trips.c
    return [TripRow(*row) for row in conn.execute(
        select(*_COLS).where(c.vehicle_id == vehicle_id, c.start_ms >= start_ms, c.start_ms <= end_ms)
        .order_by(c.start_ms.desc()).limit(limit))]


def one(conn: Connection, vehicle_id: int, trip_id: int) -> TripRow | None:
    row = conn.execute(select(*_COLS).where(trips.c.vehicle_id == vehicle_id, trips.c.id == trip_id)).first()
    return TripRow(*row) if row else None


def track(conn: Connection, vehicle_id: int, start_ms: int, end_ms: int) -> list[tuple[int, float, float]]:
    """(ts_ms, lat, lon) of the messages carrying a position, oldest first, thinned evenly to at
    most MAX_TRACK_POINTS (a day-long trip at 1 Hz would be 86 400)."""
    c = telemetry.c
    rows = conn.execute(
        select(c.ts_ms, c.signals[LAT].as_float(), c.signals[LON].as_float())
        .where(c.vehicle_id == vehicle_id, c.ts_ms >= start_ms, c.ts_ms <= end_ms,
               c.signals[LAT].as_string().is_not(None), c.signals[LON].as_string().is_not(None))
        .order_by(c.ts_ms, c.seq)).all()
    step = max(1, -(-len(rows) // MAX_TRACK_POINTS))
    thinned = rows[::step]
    if rows and thinned[-1] is not rows[-1]:
        thinned.append(rows[-1])
    return [(int(ts), float(lat), float(lon)) for ts, lat, lon in thinned]
