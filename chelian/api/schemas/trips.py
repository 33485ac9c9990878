"""Trips as the API shows them; one trip also carries its GPS track."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from chelian.api.schemas.common import ms_to_datetime
from chelian.storage.repositories.trips import TripRow


class Place(BaseModel):
    latitude: float
    longitude: float


class TripPublic(BaseModel):
    id: int
    in_progress: bool
    start: datetime
    end: datetime | None
    duration_s: float | None
    start_place: Place | None
    end_place: Place | None
    distance_m: float
    max_speed_kmh: float
    harsh_brakes: int
    harsh_accels: int
    fuel_used_pct: float | None
    fuel_used_l: float | None
    soc_used_pct: float | None
    score: float | None

    @classmethod
    def of(cls, t: TripRow) -> TripPublic:
        def place(lat: float | None, lon: float | None) -> Place | None:
            return None if lat is None or lon is None else Place(latitude=lat, longitude=lon)

        return cls(id=t.id, in_progress=t.open, start=ms_to_datetime(t.start_ms),
                   end=ms_to_datetime(t.end_ms) if t.end_ms is not None else None,
                   duration_s=(t.end_ms - t.start_ms) / 1000 if t.end_ms is not None else None,
                   start_place=place(t.start_lat, t.start_lon), end_place=place(t.end_lat, t.end_lon),
                   distance_m=t.distance_m, max_speed_kmh=t.max_speed_kmh, harsh_brakes=t.harsh_brakes,
                   harsh_accels=t.harsh_accels, fuel_used_pct=t.fuel_used_pct, fuel_used_l=t.fuel_used_l,
                   soc_used_pct=t.soc_used_pct, score=t.score)


class TripsPublic(BaseModel):
    vin: str
    data: list[TripPublic]
    count: int


class TrackPoint(BaseModel):
    ts: datetime
    latitude: float
    longitude: float


class TripDetail(TripPublic):
    track: list[TrackPoint]
