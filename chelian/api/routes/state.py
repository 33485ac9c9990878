"""A car's latest known state, and where it is."""

from __future__ import annotations

from fastapi import APIRouter

from chelian.api.deps import API_PREFIX, CatalogDep, ConnDep, OwnedVehicle
from chelian.api.schemas.state import LocationPublic, StatePublic
from chelian.errors import NotFoundError
from chelian.storage.db import now_ms
from chelian.storage.repositories import telemetry

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["state"])


@router.get("/{vin}/state", response_model=StatePublic,
            responses={404: {"description": "Not one of your cars"}})
def read_state(vehicle: OwnedVehicle, conn: ConnDep, catalog: CatalogDep) -> StatePublic:
    """The last value of every signal the car has reported, typed, with unit and age."""
    return StatePublic.of(vehicle.vin, telemetry.latest_state(conn, catalog, vehicle.id), now_ms())


@router.get("/{vin}/location", response_model=LocationPublic,
            responses={404: {"description": "Not one of your cars, or no position reported yet"}})
def read_location(vehicle: OwnedVehicle, conn: ConnDep, catalog: CatalogDep) -> LocationPublic:
    location = telemetry.latest_location(conn, catalog, vehicle.id)
    if location is None:
        raise NotFoundError(f"vehicle {vehicle.vin} has not reported a position yet")
    return LocationPublic.of(vehicle.vin, location, now_ms())
