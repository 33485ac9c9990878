"""Safety as `Platform` runs it: one bus, observers on ingest, the worker started and stopped,
and a car's crash over MQTT reaching the API."""

from __future__ import annotations

import httpx

from chelian.config import Settings
from chelian.link import topics
from chelian.link.codec import encode_event
from chelian.runtime import Platform
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.provisioning import provision
from chelian.storage.db import now_ms
from tests.fixtures_brokers import MqttProbe, free_port, wait_until


def test_platform_wires_safety_end_to_end(tmp_path):
    settings = Settings.load(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=free_port(),
        mqtt_host="127.0.0.1",
        mqtt_port=free_port(),
    )
    platform = Platform(settings).start()
    try:
        assert platform.notifications.running and platform.safety is not None
        assert all(o in platform.observers for o in platform.safety.observers)
        assert platform.app.state.safety is platform.safety
        owner = sign_up(platform.engine, "ana@example.com", "password123")
        _, creds = provision(
            platform.engine,
            vin="1M8GDM9AXKP042788",
            make="Ford",
            model="Focus",
            year=2019,
            owner_id=owner.id,
            mqtt_url=settings.car_mqtt_url,
        )
        car = MqttProbe(
            settings.mqtt_host,
            settings.mqtt_port,
            creds.mqtt_username,
            creds.mqtt_password,
            client_id=creds.vin,
        )
        car.connect()
        try:
            assert car.publish(
                topics.vehicle_topic(creds.vin, "events"),
                encode_event(0, now_ms(), "crash", {"lat": 1.0, "lon": 2.0}),
            )
        finally:
            car.close()
        with httpx.Client(base_url=platform.api_url) as api:
            token = api.post(
                "/api/v1/auth/token", data={"username": "ana@example.com", "password": "password123"}
            )
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

            def incidents():
                return api.get(f"/api/v1/vehicles/{creds.vin}/incidents", headers=headers).json()["data"]

            assert wait_until(incidents, timeout=15)
            assert incidents()[0]["latitude"] == 1.0
    finally:
        platform.stop()
    assert not platform.notifications.running
