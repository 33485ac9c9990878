"""The rules services as Platform builds them: all four detectors on one ingest, and
colleagues' *_detected events stored as alerts."""

from __future__ import annotations

from sqlalchemy import select

from chelian.events import DomainEvent, EventBus
from chelian.services.geofences.platform import RulesServices
from chelian.storage.db import now_ms
from chelian.storage.repositories import alerts as alert_repo
from chelian.storage.repositories import geofences, vehicles
from chelian.storage.tables_rules import alerts, trips
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import LAT, LON, T0, Feeder


def test_one_drive_feeds_every_detector_and_detected_events_become_alerts(engine, tmp_path):
    owner = make_owner(engine)
    car = make_car(engine, owner)
    with engine.begin() as conn:
        vid = vehicles.by_vin(conn, car.vin).id
        geofences.create(conn, owner_id=owner.id, vehicle_id=None, name="office", kind="circle",
                         center_lat=45.0, center_lon=4.0, radius_m=100, created_ms=now_ms())
        alert_repo.put_rules(conn, vid, alert_repo.Rules(100.0, None, None, "UTC"))
    bus, seen = EventBus(), []
    bus.subscribe("*", seen.append)
    rules = RulesServices.build(engine, bus)
    feed = Feeder(engine, tmp_path, rules.observers)
    feed.telemetry(car.vin, T0, {"Vehicle.LowVoltageSystemState": "ON", "Vehicle.Speed": 0.0})
    for i, (lat, speed) in enumerate([(44.99, 30.0), (44.995, 120.0), (45.0, 20.0), (45.0, 10.0)]):
        feed.telemetry(car.vin, T0 + (i + 1) * 1000, {LAT: lat, LON: 4.0, "Vehicle.Speed": speed,
                                                      "Vehicle.Diagnostics.DTCList": ["P0128"]})
    feed.telemetry(car.vin, T0 + 10_000, {"Vehicle.LowVoltageSystemState": "OFF", "Vehicle.Speed": 0.0})
    bus.publish(DomainEvent("crash_detected", car.vin, vid, T0 + 11_000, f"{car.vin}:crash:1", {"g": 5.1}))
    bus.publish(DomainEvent("crash_detected", car.vin, vid, T0 + 11_000, f"{car.vin}:crash:1", {"g": 5.1}))
    assert sorted(e.name for e in seen if e.name != "crash_detected") == [
        "dtc_reported", "geofence_entered", "speed_limit_exceeded", "trip_ended", "trip_started"]
    with engine.connect() as conn:
        assert sorted(conn.execute(select(alerts.c.type)).scalars()) == [
            "crash_detected", "dtc_reported", "geofence_entered", "speed_limit_exceeded"]
        assert conn.execute(select(trips.c.open)).scalars().all() == [False]
    rules.unsubscribe()
