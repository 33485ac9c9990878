"""An API client on each database, owners with tokens, and rows written the way ingest would.

Ingest is not used here: latest_state rows are inserted directly with `encode_value`,
telemetry as one JSON row per message and events as rows, so these tests pin down the read
side on its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from chelian.api.app import create_app
from chelian.config import Settings
from chelian.metrics import Metrics
from chelian.services.commands.lifecycle import CommandService
from chelian.signals import Catalog
from chelian.storage.repositories import vehicles
from chelian.storage.tables import events, latest_state, telemetry
from chelian.storage.values import encode_value

CATALOG = Catalog.builtin()
CAR_MQTT_URL = "mqtt://cars.example.org:8883"
VIN_A = "1M8GDM9AXKP042788"
VIN_B = "WVWZZZ1JZ3W386752"
PASSWORD = "correct horse battery"


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def app(engine, tmp_path, metrics):
    settings = Settings.load(data_dir=tmp_path, public_mqtt_url=CAR_MQTT_URL, token_ttl_s=3600)
    return create_app(settings, engine, CATALOG, metrics)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@dataclass
class Owner:
    email: str
    headers: dict[str, str]


def make_owner(client: TestClient, email: str) -> Owner:
    assert client.post("/api/v1/users", json={"email": email, "password": PASSWORD}).status_code == 201
    r = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return Owner(email, {"Authorization": f"Bearer {r.json()['access_token']}"})


def add_car(client: TestClient, owner: Owner, vin: str) -> dict:
    r = client.post("/api/v1/vehicles", headers=owner.headers,
                    json={"vin": vin, "make": "Ford", "model": "Focus", "year": 2019})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def service(app, engine):
    """The app's command service, with the MQTT hand-off recorded instead of sent."""
    svc = CommandService.from_settings(app.state.settings, engine)
    svc.sent = []
    svc.dispatch = lambda cid, vin, payload: svc.sent.append((cid, vin, payload))
    app.state.commands = svc
    return svc


@pytest.fixture
def owner(client) -> Owner:
    return make_owner(client, "ana@example.com")


@pytest.fixture
def car(client, owner) -> str:
    """VIN of a car owned by `owner`."""
    add_car(client, owner, VIN_A)
    return VIN_A


def vehicle_id(engine, vin: str) -> int:
    with engine.connect() as conn:
        return vehicles.by_vin(conn, vin).id


def put_state(engine, vin: str, values: dict, ts_ms: int, received_ms: int | None = None) -> None:
    vid = vehicle_id(engine, vin)
    with engine.begin() as conn:
        for path, value in values.items():
            num, text = encode_value(CATALOG.get(path), value)
            conn.execute(insert(latest_state).values(vehicle_id=vid, path=path, ts_ms=ts_ms,
                                                     received_ms=received_ms or ts_ms, value_num=num,
                                                     value_text=text))


_seq = itertools.count(1)


def put_messages(engine, vin: str, messages: list[tuple[int, dict]]) -> None:
    """(ts_ms, {path: value}) pairs, stored as ingest does: one telemetry row per message."""
    vid = vehicle_id(engine, vin)
    with engine.begin() as conn:
        conn.execute(insert(telemetry), [dict(vehicle_id=vid, seq=next(_seq), ts_ms=ts, received_ms=ts,
                                              signals=signals) for ts, signals in messages])


def put_samples(engine, vin: str, path: str, samples: list[tuple[int, object]]) -> None:
    put_messages(engine, vin, [(ts, {path: value}) for ts, value in samples])


def put_events(engine, vin: str, items: list[tuple[int, str, dict]]) -> None:
    """(ts_ms, type, data) triples; seq counts up from 1."""
    vid = vehicle_id(engine, vin)
    with engine.begin() as conn:
        conn.execute(insert(events), [
            dict(vehicle_id=vid, seq=i, type=t, ts_ms=ts, received_ms=ts + 1, data=d)
            for i, (ts, t, d) in enumerate(items, start=1)])
