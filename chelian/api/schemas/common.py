"""What every schema shares: epoch milliseconds become UTC datetimes at the API edge.

Storage keeps integer epoch ms (see storage.tables); people and JSON clients get ISO-8601
UTC strings (pydantic writes `2024-05-01T12:00:00.250Z`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_datetime(ms: int) -> datetime:
    """Exact (no float rounding) UTC datetime for epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def age_seconds(now_ms: int, ts_ms: int) -> float:
    """Seconds since the device time `ts_ms`; negative when the car's clock runs ahead."""
    return (now_ms - ts_ms) / 1000
