"""Cars: registration input, the owner's view, and the one-time broker credentials."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.services.fleet.provisioning import CarCredentials
from chelian.storage.repositories.vehicles import Vehicle


class VehicleCreate(BaseModel):
    """VIN rules and the model-year range are checked by provisioning (400 with reason)."""

    vin: str = Field(max_length=32, examples=["1M8GDM9AXKP042788"])
    make: str = Field(max_length=64, examples=["Ford"])
    model: str = Field(max_length=64, examples=["Focus"])
    year: int = Field(examples=[2019])


class VehiclePublic(BaseModel):
    vin: str
    make: str
    model: str
    year: int
    online: bool
    status_at: datetime | None = Field(description="When the car last went online or offline")
    created_at: datetime

    @classmethod
    def of(cls, v: Vehicle) -> VehiclePublic:
        return cls(vin=v.vin, make=v.make, model=v.model, year=v.year, online=v.online,
                   status_at=ms_to_datetime(v.status_ms) if v.status_ms is not None else None,
                   created_at=ms_to_datetime(v.created_ms))


class VehiclesPublic(BaseModel):
    data: list[VehiclePublic]
    count: int


class CarCredentialsPublic(BaseModel):
    """What the car needs to connect; the password is shown exactly once and never stored."""

    vin: str
    mqtt_url: str
    mqtt_username: str
    mqtt_password: str


class VehicleProvisionedPublic(VehiclePublic):
    credentials: CarCredentialsPublic

    @classmethod
    def of_provisioned(cls, v: Vehicle, creds: CarCredentials) -> VehicleProvisionedPublic:
        return cls(**VehiclePublic.of(v).model_dump(), credentials=CarCredentialsPublic(**creds.to_wire()))
