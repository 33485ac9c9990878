"""An app on each database, two owners with a car each, and WriteResults as ingest makes them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from chelian.api.app import create_app
from chelian.config import Settings
from chelian.ingest.batch import EventRow, StatusRow, TelemetryRows, WriteResult
from chelian.metrics import Metrics
from chelian.signals import Catalog
from chelian.storage.repositories import users, vehicles
from chelian.web.push import HEADING, LAT, LON, SPEED

PASSWORD = "correct horse battery"
VIN_A = "1M8GDM9AXKP042788"
VIN_B = "WVWZZZ1JZ3W386752"


@dataclass
class Owner:
    email: str
    token: str
    vin: str
    vehicle_id: int
    user_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def app(engine, tmp_path):
    settings = Settings.load(data_dir=tmp_path, token_ttl_s=3600)
    return create_app(settings, engine, Catalog.builtin(), Metrics())


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def make_owner(client: TestClient, engine, email: str, vin: str) -> Owner:
    assert client.post("/api/v1/users", json={"email": email, "password": PASSWORD}).status_code == 201
    login = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    token = login.json()["access_token"]
    r = client.post("/api/v1/vehicles", headers={"Authorization": f"Bearer {token}"},
                    json={"vin": vin, "make": "Ford", "model": "Focus", "year": 2019})
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        vid, uid = vehicles.by_vin(conn, vin).id, users.by_email(conn, email).id
    return Owner(email, token, vin, vid, uid)


@pytest.fixture
def ana(client, engine) -> Owner:
    return make_owner(client, engine, "ana@example.com", VIN_A)


@pytest.fixture
def ben(client, engine) -> Owner:
    return make_owner(client, engine, "ben@example.com", VIN_B)


def position(vehicle_id: int, seq: int, lat: float, lon: float, heading: float = 90.0,
             speed: float = 30.0) -> TelemetryRows:
    """A telemetry message carrying a position, as ingest hands it to observers."""
    ts = 1_700_000_000_000 + seq * 1000
    values = {LAT: lat, LON: lon, HEADING: heading, SPEED: speed}
    samples = {path: (vehicle_id, path, ts, ts + 5, value, None) for path, value in values.items()}
    return TelemetryRows(vehicle_id, seq, ts, ts + 5, "{}", samples)


def committed(telemetry=(), events=(), statuses=()) -> WriteResult:
    return WriteResult(list(telemetry), list(events), 0, list(statuses))


def event(vehicle_id: int, type_: str, ts_ms: int = 1_700_000_000_000) -> EventRow:
    return EventRow(vehicle_id, 1, type_, ts_ms, ts_ms, {})


def status(vehicle_id: int, online: bool) -> StatusRow:
    return StatusRow(vehicle_id, online, 1_700_000_000_000)
