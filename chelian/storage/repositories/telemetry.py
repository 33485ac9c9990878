"""Reading telemetry back: a car's latest state, one signal's history, and downsampled history.

Writes belong to ingest. Latest state is one narrow row per (car, signal) with the value in
`value_num`/`value_text`; history is one `telemetry` row per message with its signals as a
JSON object. Either way values come back typed (via `decode_value` / `coerce_value`)
because the signal catalog, not the row, knows what a stored 1 means.

One signal's history is pulled out of the JSON with SQLAlchemy's portable JSON accessors:
`signals[path]` is `signals -> path` on PostgreSQL (JSONB) and `json_extract(signals,
'$."path"')` on SQLite; `.as_float()` / `.as_string()` add the dialect's cast. A message
without the signal has no such key, so `as_string() IS NOT NULL` selects the messages that
carry it (ingest never stores a JSON null).

Downsampling happens in SQL so a month of 1 Hz samples never crosses the wire: buckets are
aligned to the epoch as `ts_ms // bucket_ms`, which both SQLite (integer / integer) and
PostgreSQL (bigint / bigint) evaluate as integer division. Grouping is done over a subquery
column, because on PostgreSQL the same expression with two bound parameters in SELECT and
GROUP BY would not be recognised as the same expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, Float, case, cast, func, literal, select

from chelian.errors import ValidationError
from chelian.signals import Catalog, Signal
from chelian.storage.tables import latest_state as latest_table
from chelian.storage.tables import telemetry
from chelian.storage.values import Value, coerce_value, decode_value

MAX_BUCKETS = 10_000
"""More buckets than this is a query for raw data in disguise: ask for a larger `every`."""

LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
HEADING, SPEED = "Vehicle.CurrentLocation.Heading", "Vehicle.Speed"


@dataclass(frozen=True, slots=True)
class StateEntry:
    path: str
    value: Value
    unit: str | None
    ts_ms: int
    received_ms: int


@dataclass(frozen=True, slots=True)
class Sample:
    ts_ms: int
    value: Value


@dataclass(frozen=True, slots=True)
class Bucket:
    start_ms: int
    avg: float
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    heading: float | None
    speed: float | None
    ts_ms: int
    received_ms: int


def latest_state(conn: Connection, catalog: Catalog, vehicle_id: int,
                 paths: list[str] | None = None) -> dict[str, StateEntry]:
    """The last known value of every signal of a car (or only `paths`), keyed by path.

    A path the catalog no longer knows (a VSS export was dropped from the settings) is still
    shown, with its raw stored value, rather than silently hidden.
    """
    c = latest_table.c
    query = (select(c.path, c.ts_ms, c.received_ms, c.value_num, c.value_text)
             .where(c.vehicle_id == vehicle_id))
    if paths is not None:
        query = query.where(c.path.in_(paths))
    state: dict[str, StateEntry] = {}
    for path, ts_ms, received_ms, num, text in conn.execute(query.order_by(c.path)):
        signal = catalog.get(path)
        if signal is None:
            value, unit = (text if text is not None else num), None
        else:
            value, unit = decode_value(signal, num, text), signal.unit
        state[path] = StateEntry(path, value, unit, ts_ms, received_ms)
    return state


def latest_location(conn: Connection, catalog: Catalog, vehicle_id: int) -> Location | None:
    """Where the car last said it was; None until it has reported both latitude and longitude."""
    state = latest_state(conn, catalog, vehicle_id, [LAT, LON, HEADING, SPEED])
    lat, lon = state.get(LAT), state.get(LON)
    if lat is None or lon is None or lat.value is None or lon.value is None:
        return None
    heading, speed = state.get(HEADING), state.get(SPEED)
    return Location(
        latitude=float(lat.value), longitude=float(lon.value),  # type: ignore[arg-type]
        heading=heading.value if heading else None,  # type: ignore[arg-type]
        speed=speed.value if speed else None,  # type: ignore[arg-type]
        ts_ms=max(lat.ts_ms, lon.ts_ms), received_ms=max(lat.received_ms, lon.received_ms),
    )


def _carrying(vehicle_id: int, path: str, start_ms: int, end_ms: int):  # type: ignore[no-untyped-def]
    """Messages of one car in [start, end] that carry signal `path`."""
    c = telemetry.c
    return (c.vehicle_id == vehicle_id, c.ts_ms >= start_ms, c.ts_ms <= end_ms,
            c.signals[path].as_string().is_not(None))


def history(conn: Connection, signal: Signal, vehicle_id: int, start_ms: int, end_ms: int,
            limit: int) -> tuple[list[Sample], bool]:
    """Samples with start <= ts <= end, oldest first, at most `limit`; and whether more exist.

    Oldest first so a client pages forward by asking again from the last `ts` + 1 ms.
    """
    c = telemetry.c
    rows = conn.execute(
        select(c.ts_ms, c.signals[signal.path])
        .where(*_carrying(vehicle_id, signal.path, start_ms, end_ms))
        .order_by(c.ts_ms, c.seq)
        .limit(limit + 1)
    ).all()
    samples = [Sample(ts, coerce_value(signal, raw)) for ts, raw in rows[:limit]]
    return samples, len(rows) > limit


def downsample(conn: Connection, signal: Signal, vehicle_id: int, start_ms: int, end_ms: int,
               bucket_ms: int) -> list[Bucket]:
    """avg/min/max/count per epoch-aligned bucket of `bucket_ms`, oldest first; empty buckets omitted.

    Booleans count as 0/1, so their average is the share of samples that were true.
    Text signals have no average and are refused.
    """
    if signal.stored_as_text:
        raise ValidationError(f"{signal.path} is a {signal.datatype} signal: only numeric signals can be "
                              "downsampled; leave out `every` for raw values")
    if bucket_ms <= 0:
        raise ValidationError("bucket size must be positive")
    buckets = (end_ms - start_ms) // bucket_ms + 1
    if buckets > MAX_BUCKETS:
        raise ValidationError(f"{buckets} buckets requested, at most {MAX_BUCKETS}: use a larger `every` "
                              "or a shorter time range")
    c = telemetry.c
    element = c.signals[signal.path]
    number = (case((element.as_boolean(), literal(1.0, Float)), else_=literal(0.0, Float))
              if signal.datatype == "boolean" else element.as_float())
    inner = (
        select((c.ts_ms // cast(bucket_ms, BigInteger)).label("bucket"), number.label("v"))
        .where(*_carrying(vehicle_id, signal.path, start_ms, end_ms))
        .subquery()
    )
    rows = conn.execute(
        select(inner.c.bucket, func.avg(inner.c.v), func.min(inner.c.v), func.max(inner.c.v), func.count())
        .group_by(inner.c.bucket)
        .order_by(inner.c.bucket)
    )
    return [Bucket(int(b) * bucket_ms, float(avg), float(lo), float(hi), int(n))
            for b, avg, lo, hi, n in rows]
