"""The caller's cars (own, and those of fleets they operate): list, add (with one-time broker
credentials), read one."""

from __future__ import annotations

from fastapi import APIRouter, status

from chelian.api.deps import API_PREFIX, ConnDep, CurrentUser, EngineDep, OwnedVehicle, SettingsDep
from chelian.api.schemas.vehicles import (
    VehicleCreate,
    VehicleProvisionedPublic,
    VehiclePublic,
    VehiclesPublic,
)
from chelian.services.fleet.provisioning import provision
from chelian.storage.repositories import vehicles

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["vehicles"])


@router.get("", response_model=VehiclesPublic)
def list_vehicles(user: CurrentUser, conn: ConnDep) -> VehiclesPublic:
    """Your cars and the cars of the fleets you operate."""
    cars = [VehiclePublic.of(v) for v in vehicles.visible_to(conn, user.id)]
    return VehiclesPublic(data=cars, count=len(cars))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=VehicleProvisionedPublic,
             responses={400: {"description": "Invalid VIN, make, model or year"},
                        409: {"description": "VIN already registered"}})
def add_vehicle(body: VehicleCreate, user: CurrentUser, engine: EngineDep,
                settings: SettingsDep) -> VehicleProvisionedPublic:
    """Register a car to yourself. `credentials.mqtt_password` is shown this once only."""
    vehicle, creds = provision(engine, vin=body.vin, make=body.make, model=body.model, year=body.year,
                               owner_id=user.id, mqtt_url=settings.car_mqtt_url)
    return VehicleProvisionedPublic.of_provisioned(vehicle, creds)


@router.get("/{vin}", response_model=VehiclePublic, responses={404: {"description": "Not one of your cars"}})
def read_vehicle(vehicle: OwnedVehicle) -> VehiclePublic:
    return VehiclePublic.of(vehicle)
