"""Fleets as their operators see them: the cars (with whose they are) and who runs them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.services.fleet.fleets import FleetOverview
from chelian.storage.repositories.fleets import FleetCar


class FleetVehiclePublic(BaseModel):
    vin: str
    make: str
    model: str
    year: int
    online: bool
    owner: str = Field(description="E-mail of the car's legal owner (operating a fleet does not make "
                                   "you one)")

    @classmethod
    def of(cls, car: FleetCar) -> FleetVehiclePublic:
        return cls(vin=car.vin, make=car.make, model=car.model, year=car.year, online=car.online,
                   owner=car.owner_email)


class FleetPublic(BaseModel):
    name: str
    created_at: datetime
    vehicles: list[FleetVehiclePublic]
    operators: list[str] = Field(description="E-mails of everybody who operates this fleet, you included")

    @classmethod
    def of(cls, found: FleetOverview) -> FleetPublic:
        return cls(name=found.fleet.name, created_at=ms_to_datetime(found.fleet.created_ms),
                   vehicles=[FleetVehiclePublic.of(c) for c in found.cars], operators=found.operators)


class FleetsPublic(BaseModel):
    data: list[FleetPublic]
    count: int
