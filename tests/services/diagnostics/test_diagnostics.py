"""Trouble codes from DTCList and events, the health report and maintenance reminders."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from chelian.events import EventBus
from chelian.services.diagnostics.codes import describe
from chelian.services.diagnostics.detector import DiagnosticsDetector
from chelian.services.diagnostics.health import health_report
from chelian.signals import Catalog
from chelian.storage.repositories import dtcs as repo
from chelian.storage.repositories import vehicles
from chelian.storage.tables_rules import alerts
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import T0, Feeder

DAY = 86_400_000


@pytest.fixture
def rig(engine, tmp_path):
    car = make_car(engine, make_owner(engine))
    with engine.connect() as conn:
        vid = vehicles.by_vin(conn, car.vin).id
    bus, seen = EventBus(), []
    bus.subscribe("*", seen.append)
    detector = DiagnosticsDetector(engine, bus, poll_s=0)
    return car, vid, Feeder(engine, tmp_path, [detector]), seen


def test_decode_generic_codes_with_family_severity():
    assert describe("p0301").description == "Cylinder 1 misfire detected"
    assert (describe("P0301").severity, describe("P0217").severity, describe("P0442").severity) == \
        ("high", "critical", "low")
    assert describe("P0A80").family == "Hybrid and electric propulsion"
    with pytest.raises(ValueError):
        describe("X1234")


def test_dtc_list_reports_new_codes_once_and_clears_vanished_ones(rig, engine):
    car, vid, feed, seen = rig
    dtc = "Vehicle.Diagnostics.DTCList"
    feed.telemetry(car.vin, T0, {dtc: ["P0301"]})
    feed.telemetry(car.vin, T0 + 1000, {dtc: ["P0301"]})           # repeated: nothing new
    feed.telemetry(car.vin, T0 + 2000, {dtc: ["P0301", "P0420"]})
    feed.telemetry(car.vin, T0 + 3000, {dtc: ["P0420", "garbage"]})
    assert [(e.name, e.data["code"]) for e in seen] == [("dtc_reported", "P0301"), ("dtc_reported", "P0420"),
                                                        ("dtc_cleared", "P0301")]
    assert seen[0].data["severity"] == "high"
    with engine.connect() as conn:
        rows = {r.code: r.status for r in repo.for_vehicle(conn, vid)}
        assert rows == {"P0301": "cleared", "P0420": "active"}
        assert conn.execute(select(alerts.c.type)).scalars().all() == ["dtc_reported"] * 2


def test_dtc_events_carry_status_and_freeze_frame(rig, engine):
    car, vid, feed, seen = rig
    frame = {"Vehicle.Speed": 88.0, "Vehicle.Powertrain.CombustionEngine.Speed": 3100.0}
    feed.event(car.vin, T0, "dtc_reported", {"code": "P0217", "status": "pending", "freeze_frame": frame})
    feed.event(car.vin, T0 + 1000, "dtc_reported", {"code": "P0217", "status": "active"})
    feed.event(car.vin, T0 + 2000, "dtc_reported", {"code": "P0171", "status": "cleared"})  # never open
    feed.event(car.vin, T0 + 3000, "dtc_reported", {"code": "P0217", "status": "cleared"})
    assert [(e.name, e.data["status"]) for e in seen] == [
        ("dtc_reported", "pending"), ("dtc_reported", "active"), ("dtc_cleared", "cleared")]
    assert seen[0].data["freeze_frame"] == frame


def test_health_report_warns_on_low_tyres_battery_and_serious_codes(rig, engine):
    car, vid, feed, seen = rig
    feed.telemetry(car.vin, T0, {
        "Vehicle.LowVoltageBattery.CurrentVoltage": 11.6,
        "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": 180,
        "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": 235,
        "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure": 201,   # just above the warning: fine
        "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.IsPressureLow": True,
        "Vehicle.Powertrain.FuelSystem.RelativeLevel": 55,
        "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature": 95.0,
        "Vehicle.Diagnostics.DTCList": ["P0442", "P0301"],
    })
    with engine.connect() as conn:
        report = health_report(conn, Catalog.builtin(), vid, T0)
    assert report["readings"]["battery_12v_v"]["value"] == pytest.approx(11.6)
    assert report["readings"]["fuel_level_pct"]["value"] == 55
    assert [c["code"] for c in report["open_dtcs"]] == ["P0301", "P0442"]  # most severe first
    assert report["warnings"] == [
        "12 V battery voltage low (11.6 V)", "Tyre front left pressure low (180 kPa)",
        "Tyre rear right pressure low (reported by the car)", "P0301 Cylinder 1 misfire detected (high)"]
    assert report["ok"] is False


def test_maintenance_due_by_distance_once_and_by_time(rig, engine):
    car, vid, feed, seen = rig
    with engine.begin() as conn:
        oil = repo.add_plan(conn, vehicle_id=vid, name="oil change", every_km=15_000, every_days=365,
                            last_done_km=10_000, last_done_ms=T0)
        repo.add_plan(conn, vehicle_id=vid, name="inspection", every_km=None, every_days=30,
                      last_done_km=None, last_done_ms=T0)
    odo = "Vehicle.TraveledDistance"
    feed.telemetry(car.vin, T0 + DAY, {odo: 24_999_000})            # 1 km before: not due
    assert seen == []
    feed.telemetry(car.vin, T0 + 2 * DAY, {odo: 25_000_500})
    feed.telemetry(car.vin, T0 + 2 * DAY + 1000, {odo: 25_001_000})  # still due: no second alert
    assert [(e.data["name"], e.data["reasons"]) for e in seen] == [("oil change", ["distance"])]
    feed.telemetry(car.vin, T0 + 31 * DAY, {odo: 25_100_000})
    assert [(e.data["name"], e.data["reasons"]) for e in seen][1:] == [("inspection", ["time"])]
    with engine.begin() as conn:
        assert repo.mark_done(conn, vid, oil, 25_100.0, T0 + 31 * DAY)
        report = health_report(conn, Catalog.builtin(), vid, T0 + 31 * DAY)
    oil_row = next(m for m in report["maintenance"] if m["name"] == "oil change")
    assert (oil_row["due"], oil_row["km_left"]) == (False, 15_000.0)
