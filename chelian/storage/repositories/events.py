"""Reading a car's events back (crash, DTC set, trip start ...); ingest writes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from chelian.storage.tables import events


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    type: str
    ts_ms: int
    received_ms: int
    data: Any
    """Usually an object; whatever JSON the car sent for this event type."""


def for_vehicle(conn: Connection, vehicle_id: int, start_ms: int, end_ms: int, *,
                type: str | None = None, limit: int) -> tuple[list[Event], bool]:
    """Events with start <= ts <= end, newest first, at most `limit`; and whether more exist.

    Newest first because "what just happened to my car" is the common question; a client
    pages back by asking again with `end` = the oldest `ts` - 1 ms.
    """
    c = events.c
    query = (
        select(c.seq, c.type, c.ts_ms, c.received_ms, c.data)
        .where(c.vehicle_id == vehicle_id, c.ts_ms >= start_ms, c.ts_ms <= end_ms)
        .order_by(c.ts_ms.desc(), c.seq.desc())
        .limit(limit + 1)
    )
    if type is not None:
        query = query.where(c.type == type)
    rows = conn.execute(query).all()
    return [Event(*row) for row in rows[:limit]], len(rows) > limit
