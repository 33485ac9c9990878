"""Latest state and location: typed values, units, device vs receive time, age."""

from datetime import datetime

import pytest

from chelian.storage.db import now_ms
from tests.api.conftest import put_state


def iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def test_state_is_empty_before_the_car_reports(client, owner, car):
    r = client.get(f"/api/v1/vehicles/{car}/state", headers=owner.headers)
    assert r.json() == {"vin": car, "signals": {}}


def test_state_has_typed_values_units_and_times(client, engine, owner, car):
    ts = now_ms() - 90_000
    put_state(engine, car, {
        "Vehicle.Speed": 88.5,
        "Vehicle.IsMoving": True,
        "Vehicle.TraveledDistance": 123456,
        "Vehicle.Powertrain.Transmission.CurrentGear": -1,
        "Vehicle.LowVoltageSystemState": "ON",
        "Vehicle.Diagnostics.DTCList": ["P0301", "U0100"],
        "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen": False,
    }, ts_ms=ts, received_ms=ts + 1500)
    r = client.get(f"/api/v1/vehicles/{car}/state", headers=owner.headers)
    assert r.status_code == 200
    signals = r.json()["signals"]
    speed = signals["Vehicle.Speed"]
    assert speed["value"] == 88.5 and speed["unit"] == "km/h"
    assert speed["ts"].endswith("Z") and iso_ms(speed["ts"]) == ts
    assert iso_ms(speed["received_at"]) == ts + 1500
    assert 90 <= speed["age_s"] < 120
    assert signals["Vehicle.IsMoving"]["value"] is True and signals["Vehicle.IsMoving"]["unit"] is None
    assert signals["Vehicle.Cabin.Door.Row1.DriverSide.IsOpen"]["value"] is False
    odometer = signals["Vehicle.TraveledDistance"]
    assert odometer["value"] == 123456 and isinstance(odometer["value"], int) and odometer["unit"] == "m"
    assert signals["Vehicle.Powertrain.Transmission.CurrentGear"]["value"] == -1
    assert signals["Vehicle.LowVoltageSystemState"]["value"] == "ON"
    assert signals["Vehicle.Diagnostics.DTCList"]["value"] == ["P0301", "U0100"]


def test_location_404_until_a_position_then_lat_lon_heading_speed(client, engine, owner, car):
    r = client.get(f"/api/v1/vehicles/{car}/location", headers=owner.headers)
    assert r.status_code == 404 and r.json() == {"detail": f"vehicle {car} has not reported a position yet"}
    ts = now_ms() - 5000
    put_state(engine, car, {"Vehicle.CurrentLocation.Latitude": 48.1374,
                            "Vehicle.CurrentLocation.Longitude": 11.5755,
                            "Vehicle.CurrentLocation.Heading": 270.0, "Vehicle.Speed": 42.0}, ts_ms=ts)
    body = client.get(f"/api/v1/vehicles/{car}/location", headers=owner.headers).json()
    assert (body["vin"], body["lat"], body["lon"], body["heading"], body["speed"]) == (car, 48.1374, 11.5755,
                                                                                     270.0, 42.0)
    assert iso_ms(body["ts"]) == ts and body["age_s"] == pytest.approx(5, abs=5)


def test_location_without_heading_or_speed(client, engine, owner, car):
    put_state(engine, car, {"Vehicle.CurrentLocation.Latitude": -33.86,
                            "Vehicle.CurrentLocation.Longitude": 151.21}, ts_ms=now_ms())
    body = client.get(f"/api/v1/vehicles/{car}/location", headers=owner.headers).json()
    assert (body["lat"], body["lon"], body["heading"], body["speed"]) == (-33.86, 151.21, None, None)
