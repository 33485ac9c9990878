"""One signal over time: raw samples, or avg/min/max/count per time bucket."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.api.schemas.state import SignalValue
from chelian.storage.repositories.telemetry import Bucket, Sample


class PointPublic(BaseModel):
    ts: datetime
    value: SignalValue


class BucketPublic(BaseModel):
    ts: datetime = Field(description="Start of the bucket (UTC); buckets are aligned to the epoch")
    avg: float
    min: float
    max: float
    count: int


class _HistoryBase(BaseModel):
    vin: str
    path: str
    unit: str | None
    start: datetime
    end: datetime


class HistoryPublic(_HistoryBase):
    """Raw samples, oldest first; when `truncated`, ask again from the last `ts` + 1 ms."""

    points: list[PointPublic]
    count: int
    truncated: bool

    @classmethod
    def of(cls, base: dict, samples: list[Sample], truncated: bool) -> HistoryPublic:
        points = [PointPublic(ts=ms_to_datetime(s.ts_ms), value=s.value) for s in samples]
        return cls(**base, points=points, count=len(points), truncated=truncated)


class DownsampledHistoryPublic(_HistoryBase):
    """Buckets with at least one sample, oldest first."""

    every: str
    buckets: list[BucketPublic]

    @classmethod
    def of(cls, base: dict, every: str, buckets: list[Bucket]) -> DownsampledHistoryPublic:
        return cls(**base, every=every, buckets=[
            BucketPublic(ts=ms_to_datetime(b.start_ms), avg=b.avg, min=b.min, max=b.max, count=b.count)
            for b in buckets
        ])


def history_base(vin: str, path: str, unit: str | None, start_ms: int, end_ms: int) -> dict:
    return dict(vin=vin, path=path, unit=unit, start=ms_to_datetime(start_ms), end=ms_to_datetime(end_ms))
