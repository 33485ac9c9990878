"""`Platform` with several API processes (`http_workers`): one port, a relay per process,
commands that round-trip whichever process creates them, settles them or waits for them, and
a live map that shows every car whichever process serves the WebSocket."""

from __future__ import annotations

import itertools
import json
import threading
import time

import httpx
import pytest
from sqlalchemy import text
from websockets.sync.client import connect

from chelian.config import Settings
from chelian.errors import ConfigError
from chelian.link import topics
from chelian.link.codec import encode_status, encode_telemetry
from chelian.runtime import Platform
from chelian.storage.db import now_ms
from tests.factories import new_vin, signals
from tests.fixtures_brokers import free_port, wait_until
from tests.services.commands.harness import LinkedCar


@pytest.mark.production
def test_commands_round_trip_across_api_processes(mosquitto_stack, tmp_path):
    settings = mosquitto_stack.settings.model_copy(update={"http_port": free_port(), "http_workers": 2})
    platform = Platform(settings, run_ingest=False).start()
    try:
        assert platform.api_workers is not None and all(p.is_alive() for p in platform.api_workers.processes)
        with platform.engine.connect() as conn:  # both processes listen for each other's settlements
            listeners = conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                          "WHERE query = 'LISTEN chelian_commands' "
                                          "AND datname = current_database()")).scalar_one()
        assert listeners == 2
        creds = mosquitto_stack.add_car(new_vin())
        car = LinkedCar(mosquitto_stack, creds, platform.relay.service.platform_key.public, tmp_path).connect()
        assert wait_until(lambda: creds.vin in platform.relay.online, timeout=5)
        token = httpx.post(f"{platform.api_url}/api/v1/auth/token",
                           data={"username": "owner@example.com", "password": "password1"}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        outcomes = []
        for i in range(16):  # a fresh connection each: the kernel spreads them over both processes
            with httpx.Client(base_url=f"{platform.api_url}/api/v1/vehicles/{creds.vin}", headers=headers) as api:
                made = api.post("/commands", json={"type": "lock" if i % 2 else "unlock"})
                assert made.status_code == 202, made.text
            with httpx.Client(base_url=f"{platform.api_url}/api/v1/vehicles/{creds.vin}", headers=headers) as api:
                done = api.get(f"/commands/{made.json()['id']}", params={"wait_s": 10}).json()
            outcomes.append(done["status"])
        assert outcomes == ["succeeded"] * 16
        assert car.handled == 16  # each sent once: only the leader relay resends
        car.disconnect()
    finally:
        platform.stop()
    assert platform.api_workers is not None and not platform.api_workers.processes


@pytest.mark.production
def test_every_api_process_pushes_the_cars_that_ingest_stores(mosquitto_stack):
    settings = mosquitto_stack.settings.model_copy(update={"http_port": free_port(), "http_workers": 2})
    platform = Platform(settings).start()
    creds = mosquitto_stack.add_car(new_vin())
    car = mosquitto_stack.car_client(creds)
    moving, seqs = threading.Event(), itertools.count(1)

    def drive() -> None:
        while not moving.wait(0.2):
            car.publish(topics.telemetry_topic(creds.vin), encode_telemetry(next(seqs), now_ms(), signals(1)))

    sockets = []
    try:
        with platform.engine.connect() as conn:
            listeners = conn.execute(text("SELECT count(*) FROM pg_stat_activity "
                                          "WHERE query = 'LISTEN chelian_live' "
                                          "AND datname = current_database()")).scalar_one()
        assert listeners == 2  # the main process and the worker
        login = httpx.post(f"{platform.api_url}/api/v1/auth/token",
                           data={"username": "owner@example.com", "password": "password1"})
        token = login.json()["access_token"]
        for _ in range(6):  # a connection each: the kernel spreads them over both processes
            ws = connect(f"ws://127.0.0.1:{settings.http_port}/api/v1/live", open_timeout=10)
            sockets.append(ws)
            ws.send(json.dumps({"token": token}))
            assert [json.loads(ws.recv(10))["type"] for _ in range(2)] == ["hello", "snapshot"]
        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
        for ws in sockets:  # each sees the car move, whichever process serves it
            deadline = time.monotonic() + 30
            while True:
                frame = json.loads(ws.recv(max(deadline - time.monotonic(), 0.1)))
                if any(c["vin"] == creds.vin and "lat" in c for c in frame.get("cars", [])):
                    break
    finally:
        moving.set()
        for ws in sockets:
            ws.close()
        platform.stop()


def test_several_api_processes_need_postgresql(tmp_path):
    settings = Settings.load(data_dir=tmp_path / "data", http_port=free_port(), http_workers=2)
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        Platform(settings)


@pytest.mark.production
def test_every_api_process_answers_a_scrape_with_the_counts_of_all(mosquitto_stack):
    from prometheus_client.parser import text_string_to_metric_families

    settings = mosquitto_stack.settings.model_copy(update={"http_port": free_port(), "http_workers": 2})
    platform = Platform(settings).start()
    creds = mosquitto_stack.add_car(new_vin())
    car = mosquitto_stack.car_client(creds)
    try:
        car.publish(topics.vehicle_topic(creds.vin, topics.STATUS), encode_status(True, now_ms()))
        for seq in range(1, 6):  # the main process ingests these
            car.publish(topics.telemetry_topic(creds.vin), encode_telemetry(seq, now_ms(), signals(seq)))
        stored = platform.metrics.signals_stored
        assert wait_until(lambda: platform._count_online() == 1 and stored._value.get() > 0, timeout=10)

        def scrape() -> dict[str, float]:
            with httpx.Client() as fresh:  # a connection each: the kernel spreads them over both processes
                text_ = fresh.get(f"{platform.api_url}/metrics").text
            return {s.name + str(sorted(s.labels.values())): s.value
                    for f in text_string_to_metric_families(text_) for s in f.samples}

        seen = [scrape() for _ in range(12)]
        received = {s["chelian_messages_received_total['telemetry']"] for s in seen}
        assert received == {5.0}, received  # whichever process answered
        # Each scrape counts itself once done: twelve requests, served by both processes.
        requests = [s["chelian_http_requests_total['/metrics', '200', 'GET']"] for s in seen[1:]]
        assert requests == list(range(1, 12))
        assert {s["chelian_vehicles_connected[]"] for s in seen} == {1.0}
    finally:
        car.close()
        platform.stop()
