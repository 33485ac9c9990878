"""The rules over a real broker: a car publishes a drive into a geofence, and the owner sees
the trip (with its track) and the alerts over the API."""

from __future__ import annotations

import os

from fastapi.testclient import TestClient

from chelian.api.app import create_app
from chelian.events import EventBus
from chelian.link import topics
from chelian.link.codec import encode_telemetry
from chelian.metrics import Metrics
from chelian.runtime import build_ingest
from chelian.services.geofences.platform import RulesServices
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from tests.factories import new_vin
from tests.fixtures_brokers import wait_until
from tests.services.geofences.feeding import LAT, LON, offset

OFFICE = (50.8503, 4.3517)


def test_drive_into_a_geofence_over_mqtt(broker_stack, request):
    car = broker_stack.add_car(new_vin())
    app = create_app(broker_stack.settings, broker_stack.engine, Catalog.builtin(), Metrics())
    with TestClient(app) as api:
        token = api.post("/api/v1/auth/token",
                         data={"username": "owner@example.com", "password": "password1"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        r = api.post("/api/v1/geofences", headers=headers, json={
            "name": "office", "vin": car.vin,
            "circle": {"latitude": OFFICE[0], "longitude": OFFICE[1], "radius_m": 150}})
        assert r.status_code == 201, r.text
        assert api.put(f"/api/v1/vehicles/{car.vin}/alert-rules", headers=headers,
                       json={"speed_limit_kmh": 50}).status_code == 200

        rules = RulesServices.build(broker_stack.engine, EventBus())
        worker = build_ingest(broker_stack.settings, broker_stack.engine, Catalog.builtin(), Metrics(),
                              client_id=f"test-rules-{os.getpid()}-{request.node.name[-12:]}",
                              observers=rules.observers).start()
        try:
            client = broker_stack.car_client(car)
            t, base = topics.telemetry_topic(car.vin), now_ms() - 60_000
            client.publish(t, encode_telemetry(1, base, {"Vehicle.LowVoltageSystemState": "ON",
                                                         "Vehicle.Speed": 0.0}))
            for i in range(30):  # 1 km south of the office, driving north into it at 36 km/h
                lat, lon = offset(*OFFICE, -300 + i * 10, 0)
                client.publish(t, encode_telemetry(i + 2, base + 1000 + i * 1000,
                                                   {LAT: lat, LON: lon, "Vehicle.Speed": 36.0}))
            client.publish(t, encode_telemetry(40, base + 40_000, {"Vehicle.LowVoltageSystemState": "OFF",
                                                                   "Vehicle.Speed": 0.0}))

            def trips():
                return api.get(f"/api/v1/vehicles/{car.vin}/trips", headers=headers).json()["data"]

            assert wait_until(lambda: len(trips()) == 1 and not trips()[0]["in_progress"], timeout=20)
        finally:
            worker.stop()
        trip = trips()[0]
        assert trip["duration_s"] == 40 and 280 < trip["distance_m"] < 300
        detail = api.get(f"/api/v1/vehicles/{car.vin}/trips/{trip['id']}", headers=headers).json()
        assert len(detail["track"]) == 30
        alerts = api.get(f"/api/v1/vehicles/{car.vin}/alerts", headers=headers).json()["data"]
        assert [a["type"] for a in alerts] == ["geofence_entered"]   # 36 km/h under the 50 limit
        assert alerts[0]["data"]["name"] == "office"
