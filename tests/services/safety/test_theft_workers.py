"""Unauthorised movement with a car's messages dealt out among ingest workers: the owner's
unlock that went to another worker must not turn their drive into a theft alarm."""

from __future__ import annotations

from chelian.events import EventBus
from chelian.services.safety.platform import SafetyServices
from chelian.signals import Catalog
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
