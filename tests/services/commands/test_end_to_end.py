"""Commands through a real broker, on both deployment shapes (embedded amqtt + SQLite,
Mosquitto + PostgreSQL): API -> relay -> car -> signed ack -> API, offline cars that come back
in time, and commands that expire."""

from __future__ import annotations

import os
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chelian.api.app import create_app
from chelian.metrics import Metrics
from chelian.runtime import build_ingest, build_relay
from chelian.signals import Catalog
from chelian.storage.repositories import vehicles
from chelian.storage.tables import agent_keys
from tests.factories import new_vin
from tests.fixtures_brokers import wait_until
from tests.services.commands.harness import LinkedCar


@pytest.fixture
def relay(broker_stack, request):
    relay = build_relay(broker_stack.settings, broker_stack.engine,
                        client_id=f"test-relay-{os.getpid()}-{request.node.name[-24:]}")
    relay.sweep_interval_s = 0.1
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def api(broker_stack, relay):
    app = create_app(broker_stack.settings, broker_stack.engine, Catalog.builtin(), Metrics())
    app.state.commands = relay.service
    with TestClient(app) as client:
        yield client


@pytest.fixture
def owner_headers(broker_stack, api):
    broker_stack.add_car(new_vin())  # creates owner@example.com / password1
    token = api.post("/api/v1/auth/token", data={"username": "owner@example.com", "password": "password1"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def linked_car(stack, relay, tmp_path) -> LinkedCar:
    return LinkedCar(stack, stack.add_car(new_vin()), relay.service.platform_key.public, tmp_path)


def send(api, headers, vin, body, key=None):
    extra = {"Idempotency-Key": key} if key else {}
    r = api.post(f"/api/v1/vehicles/{vin}/commands", headers=headers | extra, json=body)
    assert r.status_code == 202, r.text
    return r.json()


def wait(api, headers, vin, command_id, wait_s):
    r = api.get(f"/api/v1/vehicles/{vin}/commands/{command_id}", headers=headers, params={"wait_s": wait_s})
    assert r.status_code == 200, r.text
    return r.json()


def test_lock_round_trip_with_signed_ack_latency_and_lock_state(broker_stack, relay, api, owner_headers,
                                                                 tmp_path):
    ingest = build_ingest(broker_stack.settings, broker_stack.engine, Catalog.builtin(), Metrics(),
                          client_id=f"test-ingest-{os.getpid()}-cmd")
    ingest.start()
    try:
        car = linked_car(broker_stack, relay, tmp_path).connect()
        assert wait_until(lambda: car.vin in relay.online, timeout=5)
        started = time.monotonic()
        command = send(api, owner_headers, car.vin, {"type": "lock"}, key="lock-1")
        done = wait(api, owner_headers, car.vin, command["id"], 10)
        elapsed = time.monotonic() - started
        assert (done["status"], done["reason"], done["attempts"]) == ("succeeded", None, 1), done
        assert car.body.locked and car.body.calls == [("lock", None)]
        assert 0 <= done["latency"]["sent_to_ack_ms"] <= done["latency"]["request_to_final_ms"] < 2000
        assert elapsed < 2.0, "wait_s returned as soon as the ack was in"
        pinned = api.get(f"/api/v1/vehicles/{car.vin}/agent-key", headers=owner_headers).json()
        assert (pinned["public_key"], pinned["how"]) == (car.executor.agent_public_key, "first_use")

        again = send(api, owner_headers, car.vin, {"type": "lock"}, key="lock-1")
        assert again["id"] == command["id"] and again["status"] == "succeeded"
        time.sleep(0.3)
        assert car.handled == 1, "an idempotent retry is never sent again"

        def doors_locked() -> bool:
            state = api.get(f"/api/v1/vehicles/{car.vin}/state", headers=owner_headers).json()
            driver_door = state.get("signals", {}).get("Vehicle.Cabin.Door.Row1.DriverSide.IsLocked", {})
            return driver_door.get("value") is True

        assert wait_until(doors_locked, timeout=10), "the car reports its doors locked in telemetry"
        car.disconnect()
    finally:
        ingest.stop()


def test_rejection_reason_travels_back_signed(broker_stack, relay, api, owner_headers, tmp_path):
    car = linked_car(broker_stack, relay, tmp_path).connect()
    car.executor.keystore.revoke(relay.service.platform_key.kid, 0)  # the owner revoked the platform
    assert wait_until(lambda: car.vin in relay.online, timeout=5)
    command = send(api, owner_headers, car.vin, {"type": "unlock"})
    done = wait(api, owner_headers, car.vin, command["id"], 10)
    assert (done["status"], done["reason"]) == ("rejected", "key_not_valid_now")
    assert "revoked" in done["reason_text"] and car.body.calls == []
    car.disconnect()


def test_command_for_an_offline_car_is_sent_when_it_reconnects(broker_stack, relay, api, owner_headers,
                                                                tmp_path):
    car = linked_car(broker_stack, relay, tmp_path)
    command = send(api, owner_headers, car.vin, {"type": "locate", "expires_in_s": 20})
    assert wait(api, owner_headers, car.vin, command["id"], 0.5)["status"] == "queued"
    car.connect()
    done = wait(api, owner_headers, car.vin, command["id"], 10)
    assert (done["status"], done["attempts"]) == ("succeeded", 1), done
    assert done["result"]["lat"] == 42.5063 and done["sent_at"] > done["created_at"]
    car.disconnect()
    assert wait_until(lambda: car.vin not in relay.online, timeout=5)
    later = send(api, owner_headers, car.vin, {"type": "honk_flash"})
    assert wait(api, owner_headers, car.vin, later["id"], 0.3)["status"] == "queued", "offline again: queued"


def test_a_follower_relay_sends_its_queued_commands_when_the_car_comes_online(broker_stack, tmp_path):
    """Another API process's relay (no sweeps, no resends) still delivers what its process
    created while the car was away: the leader may have flushed before the command existed."""
    follower = build_relay(broker_stack.settings, broker_stack.engine, leader=False,
                           client_id=f"test-follower-{os.getpid()}")
    follower.start()
    try:
        car = linked_car(broker_stack, follower, tmp_path)
        owner_id = broker_stack._owner_id
        assert owner_id is not None
        with broker_stack.engine.connect() as conn:
            vehicle = vehicles.by_vin(conn, car.vin)
        row, _ = follower.service.create(vehicle, owner_id, "lock", {})
        assert follower.service.get(vehicle.id, row.id).status == "queued"
        car.connect()
        assert wait_until(lambda: follower.service.get(vehicle.id, row.id).status == "succeeded", timeout=10)
        assert car.handled == 1
        car.disconnect()
    finally:
        follower.stop()


def test_command_for_a_car_that_stays_offline_expires(broker_stack, relay, api, owner_headers, tmp_path):
    car = linked_car(broker_stack, relay, tmp_path)
    command = send(api, owner_headers, car.vin, {"type": "lock", "expires_in_s": 1})
    done = wait(api, owner_headers, car.vin, command["id"], 5)
    assert (done["status"], done["sent_at"], done["attempts"]) == ("expired", None, 0)
    assert 1000 <= done["latency"]["request_to_final_ms"] < 2500
    car.connect()
    time.sleep(0.5)
    assert car.handled == 0, "an expired command is never sent"
    car.disconnect()


def test_immobilise_waits_for_the_car_to_stop(broker_stack, relay, api, owner_headers, tmp_path):
    car = linked_car(broker_stack, relay, tmp_path)
    car.body.speed = 60.0
    car.connect()
    assert wait_until(lambda: car.vin in relay.online, timeout=5)
    command = send(api, owner_headers, car.vin, {"type": "immobilise", "expires_in_s": 30})
    assert wait(api, owner_headers, car.vin, command["id"], 1.0)["status"] == "sent"
    car.body.speed = 0.0
    done = wait(api, owner_headers, car.vin, command["id"], 10)
    assert done["status"] == "succeeded" and car.body.immobilised
    car.disconnect()


def test_forged_ack_from_another_key_is_ignored(broker_stack, relay, api, owner_headers, tmp_path):
    car = linked_car(broker_stack, relay, tmp_path).connect()
    assert wait_until(lambda: _pinned(broker_stack, car.vin), timeout=5)
    impostor = LinkedCar(broker_stack, car.creds, relay.service.platform_key.public, tmp_path / "impostor")
    car.disconnect()
    command = send(api, owner_headers, car.vin, {"type": "unlock"})
    impostor.connect()  # same MQTT secret, different agent key: its acks do not count
    time.sleep(1.0)
    # Its ack is ignored, so the relay may resend (byte-identical) meanwhile: the impostor acts once.
    assert impostor.handled >= 1 and impostor.body.calls == [("unlock", None)]
    assert wait(api, owner_headers, car.vin, command["id"], 0)["status"] == "sent"
    impostor.disconnect()


def _pinned(stack, vin) -> bool:
    with stack.engine.connect() as conn:
        return conn.execute(select(agent_keys.c.kid)).first() is not None
