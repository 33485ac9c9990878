"""Geofences, alerts and alert rules as the API shows them (GeoJSON for polygons)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.storage.repositories.alerts import Alert, Rules
from chelian.storage.repositories.geofences import GeofenceRow


class CircleSpec(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=500_000)


class GeofenceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    vin: str | None = Field(default=None, description="Bind to one car; leave out for all your cars")
    circle: CircleSpec | None = None
    polygon: dict[str, Any] | None = Field(default=None, description='GeoJSON {"type": "Polygon", ...}, '
                                                                     "[longitude, latitude] positions")


class GeofencePublic(BaseModel):
    id: int
    name: str
    vin: str | None
    kind: str
    circle: CircleSpec | None
    polygon: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, row: GeofenceRow, vin: str | None) -> GeofencePublic:
        spec = (CircleSpec(latitude=row.center_lat, longitude=row.center_lon, radius_m=row.radius_m)
                if row.kind == "circle" else None)
        return cls(id=row.id, name=row.name, vin=vin, kind=row.kind, circle=spec, polygon=row.geometry,
                   created_at=ms_to_datetime(row.created_ms))


class GeofencesPublic(BaseModel):
    data: list[GeofencePublic]
    count: int


class AlertPublic(BaseModel):
    id: int
    type: str
    ts: datetime
    data: Any

    @classmethod
    def of(cls, a: Alert) -> AlertPublic:
        return cls(id=a.id, type=a.type, ts=ms_to_datetime(a.ts_ms), data=a.data)


class AlertsPublic(BaseModel):
    vin: str
    data: list[AlertPublic]
    count: int


class AlertRulesBody(BaseModel):
    speed_limit_kmh: float | None = Field(default=None, gt=0, le=400)
    curfew_start: str | None = Field(default=None, description="HH:MM local time, e.g. 22:00")
    curfew_end: str | None = Field(default=None, description="HH:MM local time, e.g. 06:00")
    timezone: str = Field(default="UTC", description="IANA zone of the curfew, e.g. Europe/Paris")

    @classmethod
    def of(cls, rules: Rules | None) -> AlertRulesBody:
        if rules is None:
            return cls()

        def hhmm(m: int | None) -> str | None:
            return None if m is None else f"{m // 60:02d}:{m % 60:02d}"

        return cls(speed_limit_kmh=rules.speed_limit_kmh, curfew_start=hhmm(rules.curfew_start_min),
                   curfew_end=hhmm(rules.curfew_end_min), timezone=rules.timezone)
