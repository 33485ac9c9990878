"""A car's latest known state and position, with how old each value is."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chelian.api.schemas.common import age_seconds, ms_to_datetime
from chelian.storage.repositories.telemetry import Location, StateEntry

SignalValue = bool | int | float | str | list[str] | None


class SignalStatePublic(BaseModel):
    value: SignalValue = Field(description="Typed as the VSS datatype says: number, boolean, string or list")
    unit: str | None
    ts: datetime = Field(description="Device time of the sample (UTC)")
    received_at: datetime = Field(description="When the platform received it (UTC)")
    age_s: float = Field(description="Seconds between device time and now")


class StatePublic(BaseModel):
    vin: str
    signals: dict[str, SignalStatePublic]

    @classmethod
    def of(cls, vin: str, state: dict[str, StateEntry], now_ms: int) -> StatePublic:
        return cls(vin=vin, signals={
            path: SignalStatePublic(value=e.value, unit=e.unit, ts=ms_to_datetime(e.ts_ms),
                                    received_at=ms_to_datetime(e.received_ms),
                                    age_s=age_seconds(now_ms, e.ts_ms))
            for path, e in state.items()
        })


class LocationPublic(BaseModel):
    vin: str
    lat: float = Field(description="Latitude, degrees (WGS 84)")
    lon: float = Field(description="Longitude, degrees (WGS 84)")
    heading: float | None = Field(description="Degrees clockwise from north, if reported")
    speed: float | None = Field(description="km/h, if reported")
    ts: datetime = Field(description="Device time of the position fix (UTC)")
    received_at: datetime
    age_s: float

    @classmethod
    def of(cls, vin: str, loc: Location, now_ms: int) -> LocationPublic:
        return cls(vin=vin, lat=loc.latitude, lon=loc.longitude, heading=loc.heading, speed=loc.speed,
                   ts=ms_to_datetime(loc.ts_ms), received_at=ms_to_datetime(loc.received_ms),
                   age_s=age_seconds(now_ms, loc.ts_ms))
