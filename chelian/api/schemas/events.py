"""Things that happened to a car (crash, DTC set, trip start ...), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from chelian.api.schemas.common import ms_to_datetime
from chelian.storage.repositories.events import Event


class EventPublic(BaseModel):
    seq: int
    type: str
    ts: datetime
    received_at: datetime
    data: Any

    @classmethod
    def of(cls, e: Event) -> EventPublic:
        return cls(seq=e.seq, type=e.type, ts=ms_to_datetime(e.ts_ms),
                   received_at=ms_to_datetime(e.received_ms), data=e.data)


class EventsPublic(BaseModel):
    """When `truncated`, page back with `end` = the oldest `ts` - 1 ms."""

    vin: str
    data: list[EventPublic]
    count: int
    truncated: bool
