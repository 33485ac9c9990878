"""The health report warns at the operator's thresholds (`health_low_tyre_kpa`, `..._battery_v`)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from chelian.api.app import create_app
from chelian.config import Settings
from chelian.storage.db import now_ms
from tests.api.conftest import CATALOG, add_car, make_owner, put_state

VIN = "1M8GDM9AXKP042788"
STATE = {"Vehicle.LowVoltageBattery.CurrentVoltage": 12.2,
         "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": 215}


@pytest.mark.parametrize("settings,warnings", [
    ({}, []),
    ({"health_low_tyre_kpa": 230.0, "health_low_battery_v": 12.4},
     ["12 V battery voltage low (12.2 V)", "Tyre front left pressure low (215 kPa)"]),
])
def test_health_warnings_follow_the_settings(engine, tmp_path, metrics, settings, warnings):
    app = create_app(Settings.load(data_dir=tmp_path, **settings), engine, CATALOG, metrics)
    with TestClient(app) as client:
        owner = make_owner(client, "ana@example.com")
        add_car(client, owner, VIN)
        put_state(engine, VIN, STATE, now_ms() - 1000)
        health = client.get(f"/api/v1/vehicles/{VIN}/health", headers=owner.headers).json()
    assert health["warnings"] == warnings
