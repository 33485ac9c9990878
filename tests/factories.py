"""Test factories: people, cars and vehicle-link payloads."""

from __future__ import annotations

import itertools

from sqlalchemy import Engine

from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.provisioning import CarCredentials, provision
from chelian.storage.repositories.users import User
from chelian.vin import with_check_digit

_serial = itertools.count(100000)


def new_vin() -> str:
    return with_check_digit(f"1FTFW1ET0D{next(_serial):06d}"[:17].ljust(17, "0"))


def make_owner(engine: Engine, email: str | None = None) -> User:
    return sign_up(engine, email or f"owner{next(_serial)}@example.com", "password123")


def make_car(engine: Engine, owner: User, mqtt_url: str = "mqtt://127.0.0.1:1883") -> CarCredentials:
    _, creds = provision(engine, vin=new_vin(), make="Ford", model="F-150", year=2013, owner_id=owner.id,
                         mqtt_url=mqtt_url)
    return creds


def signals(i: int = 0) -> dict[str, object]:
    """One second of plausible data: 25 signal updates."""
    doors = [f"Vehicle.Cabin.Door.Row{r}.{s}" for r in (1, 2) for s in ("DriverSide", "PassengerSide")]
    tires = [f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire.Pressure" for r in (1, 2) for s in ("Left", "Right")]
    body: dict[str, object] = {
        "Vehicle.Speed": 30.0 + i % 40,
        "Vehicle.IsMoving": True,
        "Vehicle.TraveledDistance": 10_000 + 10 * i,
        "Vehicle.CurrentLocation.Latitude": 42.5063 + i * 1e-5,
        "Vehicle.CurrentLocation.Longitude": 1.5218 + i * 1e-5,
        "Vehicle.CurrentLocation.Heading": float(i % 360),
        "Vehicle.CurrentLocation.Altitude": 1023.0,
        "Vehicle.Powertrain.FuelSystem.RelativeLevel": 80 - i % 50,
        "Vehicle.Powertrain.CombustionEngine.Speed": 2100.0,
        "Vehicle.LowVoltageBattery.CurrentVoltage": 14.1,
        "Vehicle.LowVoltageSystemState": "ON",
        "Vehicle.Exterior.AirTemperature": 12.5,
        "Vehicle.Acceleration.Longitudinal": 0.3,
        "Vehicle.Acceleration.Lateral": -0.1,
        "Vehicle.Powertrain.Transmission.CurrentGear": 3,
        **{f"{d}.IsLocked": True for d in doors},
        **{t: 230 + (i % 5) for t in tires},
    }
    assert len(body) == 23
    body["Vehicle.Cabin.HVAC.AmbientAirTemperature"] = 21.0
    body["Vehicle.Chassis.ParkingBrake.IsEngaged"] = False
    return body
