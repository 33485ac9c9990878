"""A car's trips, newest first, and one trip with its track."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chelian.api.deps import API_PREFIX, ConnDep, EventsWindow, OwnedVehicle
from chelian.api.schemas.common import ms_to_datetime
from chelian.api.schemas.trips import TrackPoint, TripDetail, TripPublic, TripsPublic
from chelian.errors import NotFoundError
from chelian.storage.db import now_ms
from chelian.storage.repositories import trips

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["trips"])
_NOT_YOURS = {404: {"description": "Not one of your cars (or trips)"}}


@router.get("/{vin}/trips", response_model=TripsPublic, responses=_NOT_YOURS)
def list_trips(vehicle: OwnedVehicle, window: EventsWindow, conn: ConnDep,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> TripsPublic:
    """Trips that started in the window (default: the last seven days), newest first."""
    rows = trips.for_vehicle(conn, vehicle.id, window.start_ms, window.end_ms, limit)
    return TripsPublic(vin=vehicle.vin, data=[TripPublic.of(t) for t in rows], count=len(rows))


@router.get("/{vin}/trips/{trip_id}", response_model=TripDetail, responses=_NOT_YOURS)
def get_trip(trip_id: int, vehicle: OwnedVehicle, conn: ConnDep) -> TripDetail:
    row = trips.one(conn, vehicle.id, trip_id)
    if row is None:
        raise NotFoundError(f"no trip {trip_id} for {vehicle.vin}")
    end = row.end_ms if row.end_ms is not None else now_ms()
    track = [TrackPoint(ts=ms_to_datetime(ts), latitude=lat, longitude=lon)
             for ts, lat, lon in trips.track(conn, vehicle.id, row.start_ms, end)]
    return TripDetail(**TripPublic.of(row).model_dump(), track=track)
