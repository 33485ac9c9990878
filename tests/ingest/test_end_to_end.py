"""Ingest through a real broker, on both deployment shapes (embedded amqtt + SQLite,
Mosquitto + PostgreSQL): publish -> stored -> visible over the API, rejections, and a
SIGKILLed ingest worker that must still store every message exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from chelian.api.app import create_app
from chelian.link import topics
from chelian.link.codec import encode_telemetry
from chelian.metrics import Metrics
from chelian.runtime import build_ingest
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from chelian.storage.tables import latest_state, rejected_messages, telemetry
from tests.factories import new_vin, signals
from tests.fixtures_brokers import start_ingest_process, stop_process, wait_until
from tests.ingest.vss_export import EXTENSION_SIGNAL, write_vss_export


def stored_seqs(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(telemetry.c.seq).order_by(telemetry.c.seq)).scalars())


@pytest.fixture
def ingest(broker_stack, request):
    metrics = Metrics()
    worker = build_ingest(broker_stack.settings, broker_stack.engine, Catalog.builtin(), metrics,
                          client_id=f"test-ingest-{os.getpid()}-{request.node.name[-20:]}")
    worker.start()
    yield worker
    worker.stop()


def test_published_telemetry_is_stored_and_visible_over_the_api(broker_stack, ingest):
    car = broker_stack.add_car(new_vin())
    client = broker_stack.car_client(car)
    base = now_ms() - 30_000
    for i in range(20):
        payload = encode_telemetry(i, base + i * 1000, signals(i))
        assert client.publish(topics.telemetry_topic(car.vin), payload)
    assert wait_until(lambda: len(stored_seqs(broker_stack.engine)) == 20, timeout=15)

    s = broker_stack.settings
    app = create_app(s, broker_stack.engine, Catalog.builtin(), ingest.processor.metrics)
    with TestClient(app) as api:
        token = api.post("/api/v1/auth/token",
                         data={"username": "owner@example.com", "password": "password1"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        state = api.get(f"/api/v1/vehicles/{car.vin}/state", headers=headers).json()
        assert state["signals"]["Vehicle.Speed"]["value"] == signals(19)["Vehicle.Speed"]
        assert state["signals"]["Vehicle.Speed"]["unit"] == "km/h"
        assert state["signals"]["Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"]["value"] is True
        history = api.get(f"/api/v1/vehicles/{car.vin}/signals/Vehicle.TraveledDistance/history",
                          params={"start": base, "end": now_ms()}, headers=headers).json()
        assert [p["value"] for p in history["points"]] == [10_000 + 10 * i for i in range(20)]
        metrics = api.get("/metrics").text
    assert 'chelian_messages_received_total{channel="telemetry"} 20.0' in metrics
    assert "chelian_signals_stored_total 500.0" in metrics


def test_bad_messages_are_rejected_counted_and_kept_aside(broker_stack, ingest):
    car = broker_stack.add_car(new_vin())
    client = broker_stack.car_client(car)
    t = topics.telemetry_topic(car.vin)
    bad = {
        "malformed_json": b'{"seq": 1, "ts": ',
        "unknown_signal": encode_telemetry(2, now_ms(), {"Vehicle.FluxCapacitor.Level": 1.21}),
        "wrong_type": encode_telemetry(3, now_ms(), {"Vehicle.Speed": "88 mph"}),
        "out_of_range": encode_telemetry(4, now_ms(), {"Vehicle.Powertrain.FuelSystem.RelativeLevel": 140}),
    }
    assert client.publish(t, encode_telemetry(10, now_ms(), signals(0)))
    for payload in bad.values():
        assert client.publish(t, payload)
    assert client.publish(t, encode_telemetry(11, now_ms(), signals(1)))

    def rejected():
        with broker_stack.engine.connect() as conn:
            return dict(conn.execute(select(rejected_messages.c.reason, rejected_messages.c.payload)).all())

    assert wait_until(lambda: len(rejected()) == 4 and len(stored_seqs(broker_stack.engine)) == 2, timeout=15)
    assert {reason: bytes(p) for reason, p in rejected().items()} == bad
    assert stored_seqs(broker_stack.engine) == [10, 11]
    for reason in bad:
        assert ingest.processor.metrics.messages_rejected.labels(reason)._value.get() == 1


@pytest.mark.slow
def test_ingest_killed_mid_stream_stores_every_message_exactly_once(broker_stack, tmp_path):
    car = broker_stack.add_car(new_vin())
    client = broker_stack.car_client(car)
    log = tmp_path / "ingest.log"
    worker = start_ingest_process(broker_stack, "killme", log)
    total = 400
    published = threading.Event()

    def publish_all() -> None:
        for i in range(total):
            assert client.publish(topics.telemetry_topic(car.vin), encode_telemetry(i, now_ms(), signals(i)))
            time.sleep(0.004)
        published.set()

    try:
        assert wait_until(lambda: _is_subscribed(broker_stack, client, car), timeout=20), log.read_text()
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        assert wait_until(lambda: len(stored_seqs(broker_stack.engine)) >= 50, timeout=20), log.read_text()
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        killed_at = len(stored_seqs(broker_stack.engine))
        assert killed_at < total, "the kill came too late to test anything"
        time.sleep(0.5)
        worker = start_ingest_process(broker_stack, "killme", log)
        publisher.join(30)
        assert published.is_set()
        assert wait_until(lambda: len(stored_seqs(broker_stack.engine)) >= total, timeout=30), log.read_text()
        time.sleep(0.5)  # any duplicate delivery would have landed by now
        # Exactly once, asserted directly: no (car, seq) twice, and every published seq present.
        # Whether the broker redelivered anything already committed depends on where the kill
        # landed (commit and ack are microseconds apart), so the duplicate counter is not
        # asserted here; test_processor checks that a redelivered batch is counted and dropped.
        with broker_stack.engine.connect() as conn:
            twice = conn.execute(select(telemetry.c.vehicle_id, telemetry.c.seq).group_by(
                telemetry.c.vehicle_id, telemetry.c.seq).having(func.count() > 1)).all()
        assert twice == []
        assert stored_seqs(broker_stack.engine) == list(range(total))
    finally:
        stop_process(worker)


def _is_subscribed(stack, client, car) -> bool:
    """The worker is up once a probe message (seq far away) is stored."""
    client.publish(topics.telemetry_topic(car.vin), encode_telemetry(10**9, now_ms(), {"Vehicle.Speed": 1.0}))
    time.sleep(0.3)
    with stack.engine.connect() as conn:
        found = conn.execute(select(func.count()).select_from(telemetry)
                             .where(telemetry.c.seq == 10**9)).scalar()
        if found:
            conn.execute(telemetry.delete().where(telemetry.c.seq == 10**9))
            conn.commit()
    return bool(found)


@pytest.mark.slow
def test_a_signal_only_in_a_vss_export_is_stored_once_chelian_ingest_is_given_it(
        broker_stack, tmp_path, monkeypatch):
    """`chelian ingest` without CHELIAN_VSS_JSON rejects the extension signal as unknown; restarted
    (same broker session) with it, the same kind of message is stored and its value is the latest state."""
    car = broker_stack.add_car(new_vin())
    client = broker_stack.car_client(car)
    t = topics.telemetry_topic(car.vin)
    log = tmp_path / "ingest.log"
    for key in [k for k in os.environ if k.startswith("CHELIAN_")]:
        monkeypatch.delenv(key)

    def rejected() -> list[str]:
        with broker_stack.engine.connect() as conn:
            return list(conn.execute(select(rejected_messages.c.reason)).scalars())

    def latest() -> dict[str, float]:
        with broker_stack.engine.connect() as conn:
            return dict(conn.execute(select(latest_state.c.path, latest_state.c.value_num)).all())

    worker = start_ingest_process(broker_stack, "vss", log)
    try:
        assert wait_until(lambda: _is_subscribed(broker_stack, client, car), timeout=20), log.read_text()
        assert client.publish(t, encode_telemetry(1, now_ms(), {EXTENSION_SIGNAL: 88.5,
                                                                "Vehicle.Speed": 80.0}))
        assert wait_until(lambda: rejected() == ["unknown_signal"], timeout=15), log.read_text()
        assert EXTENSION_SIGNAL not in latest() and latest()["Vehicle.Speed"] == 80.0
    finally:
        stop_process(worker)

    monkeypatch.setenv("CHELIAN_VSS_JSON", str(write_vss_export(tmp_path / "vss.json")))
    worker = start_ingest_process(broker_stack, "vss", log)
    try:
        assert wait_until(lambda: _is_subscribed(broker_stack, client, car), timeout=20), log.read_text()
        assert client.publish(t, encode_telemetry(2, now_ms(), {EXTENSION_SIGNAL: 96.0,
                                                                "Vehicle.Speed": 95.0}))
        assert wait_until(lambda: latest().get(EXTENSION_SIGNAL) == 96.0, timeout=15), log.read_text()
        assert rejected() == ["unknown_signal"]  # nothing new refused
        assert stored_seqs(broker_stack.engine) == [1, 2]
    finally:
        stop_process(worker)
