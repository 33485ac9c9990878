"""Unauthorised movement with a car's messages dealt out among ingest workers: the owner's
unlock that went to another worker must not turn their drive into a theft alarm."""

from __future__ import annotations

from sqlalchemy import select

from chelian.config import Settings
from chelian.events import EventBus
from chelian.runtime import build_detectors
from chelian.services.safety.platform import SafetyServices
from chelian.signals import Catalog
from chelian.storage.tables_rules import alerts
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import T0, Feeder, offset

LOCKED, IGN = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked", "Vehicle.LowVoltageSystemState"
SPEED = "Vehicle.Speed"
LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
HOME = (45.7640, 4.8357)


def worker(engine, path, seen):  # type: ignore[no-untyped-def]
    bus = EventBus()
    bus.subscribe("unauthorised_movement_detected", seen.append)
    path.mkdir()
    return Feeder(engine, path, SafetyServices.build(engine, bus, Catalog.builtin()).observers)


def at(north_m: float, **signals) -> dict:  # type: ignore[no-untyped-def]
    return {**dict(zip((LAT, LON), offset(*HOME, north_m, 0), strict=True)), **signals}


def test_the_owner_driving_off_is_no_theft_when_the_unlock_went_to_another_worker(engine, tmp_path):
    vin, seen = make_car(engine, make_owner(engine)).vin, []
    a, b = worker(engine, tmp_path / "a", seen), worker(engine, tmp_path / "b", seen)
    a.telemetry(vin, T0, at(0, **{LOCKED: True, IGN: "OFF", SPEED: 0.0}))
    b.telemetry(vin, T0 + 60_000, at(0, **{LOCKED: False, IGN: "ON"}))
    a.telemetry(vin, T0 + 90_000, at(400, **{SPEED: 45.0}))  # a's memory still says locked and off
    assert seen == []


def test_a_towed_car_still_alerts_with_its_messages_split(engine, tmp_path):
    vin, seen = make_car(engine, make_owner(engine)).vin, []
    a, b = worker(engine, tmp_path / "a", seen), worker(engine, tmp_path / "b", seen)
    a.telemetry(vin, T0, at(0, **{LOCKED: True, IGN: "OFF", SPEED: 0.0}))
    b.telemetry(vin, T0 + 60_000, at(10))
    a.telemetry(vin, T0 + 90_000, at(300))
    assert [e.name for e in seen] == ["unauthorised_movement_detected"]


def test_a_towed_car_seen_moving_by_two_workers_alerts_once(engine, tmp_path):
    vin, seen = make_car(engine, make_owner(engine)).vin, []
    feeds = []
    for name in ("a", "b"):  # each worker as `chelian ingest` builds it: alerts are recorded
        bus = EventBus()
        bus.subscribe("unauthorised_movement_detected", seen.append)
        safety, rules = build_detectors(engine, bus, Catalog.builtin(), settings=Settings())
        (tmp_path / name).mkdir()
        feeds.append(Feeder(engine, tmp_path / name, [*safety.observers, *rules.observers]))
    a, b = feeds
    a.telemetry(vin, T0, at(0, **{LOCKED: True, IGN: "OFF", SPEED: 0.0}))
    b.telemetry(vin, T0 + 60_000, at(5, **{LOCKED: True, IGN: "OFF"}))  # the heartbeat: b's spot
    a.telemetry(vin, T0 + 90_000, at(300))        # a alerts
    b.telemetry(vin, T0 + 91_000, at(320))        # b would alert too: the same theft
    assert len(seen) == 1
    with engine.connect() as conn:
        assert len(conn.execute(select(alerts.c.key).where(
            alerts.c.type == "unauthorised_movement_detected")).all()) == 1

