"""Trouble codes, the health report and maintenance reminders as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.services.diagnostics.codes import describe
from chelian.storage.repositories.dtcs import DtcRow


class DtcPublic(BaseModel):
    code: str
    status: str
    description: str
    family: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    cleared_at: datetime | None
    freeze_frame: dict[str, Any] | None

    @classmethod
    def of(cls, row: DtcRow) -> DtcPublic:
        info = describe(row.code)
        return cls(code=row.code, status=row.status, description=info.description, family=info.family,
                   severity=info.severity, first_seen=ms_to_datetime(row.first_seen_ms),
                   last_seen=ms_to_datetime(row.last_seen_ms),
                   cleared_at=ms_to_datetime(row.cleared_ms) if row.cleared_ms is not None else None,
                   freeze_frame=row.freeze_frame)


class DtcsPublic(BaseModel):
    vin: str
    data: list[DtcPublic]
    count: int


class ReminderPublic(BaseModel):
    id: int
    name: str
    every_km: float | None
    every_days: float | None
    last_done_km: float | None
    last_done_ms: int
    km_left: float | None
    days_left: float | None
    due: bool
    reasons: list[str]


class HealthPublic(BaseModel):
    vin: str
    ok: bool
    warnings: list[str]
    readings: dict[str, Any]
    """Each reading: {value, unit, ts_ms}, or null when the car never reported it."""
    open_dtcs: list[dict[str, Any]]
    maintenance: list[ReminderPublic]


class PlanCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    every_km: float | None = Field(default=None, gt=0, le=1_000_000)
    every_days: float | None = Field(default=None, gt=0, le=36_500)
    last_done_km: float | None = Field(default=None, ge=0, description="Default: the current odometer")
    last_done_ms: int | None = Field(default=None, ge=0, description="Default: now")


class PlanDone(BaseModel):
    done_km: float | None = Field(default=None, ge=0, description="Default: the current odometer")
    done_ms: int | None = Field(default=None, ge=0, description="Default: now")
