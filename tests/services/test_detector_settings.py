"""Detector thresholds are settings: the same messages through ingest alert or not depending on
what the operator set, and the defaults are exactly the detectors' own."""

from __future__ import annotations

import inspect

from chelian.config import Settings
from chelian.events import EventBus
from chelian.runtime import build_detectors
from chelian.services.geofences.detector import GeofenceDetector
from chelian.services.safety.crash import CrashRules
from chelian.services.safety.movement import MovementGuard
from chelian.services.safety.platform import crash_rules
from chelian.services.safety.theft import TRACKING_DURATION_S, TRACKING_INTERVAL_MS
from chelian.services.trips.score import HARSH_ACCEL_MS2, HARSH_BRAKE_MS2, REARM_MS2
from chelian.signals import Catalog
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import T0, Feeder, offset

SPEED, ACC = "Vehicle.Speed", "Vehicle.Acceleration.Longitudinal"
LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
IGN, LOCKED = "Vehicle.LowVoltageSystemState", "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
HOME = (45.7640, 4.8357)


def run(engine, tmp_path, messages: list[tuple[int, dict]], **settings):  # type: ignore[no-untyped-def]
    """Feed one new car's messages through ingest with every detector built from `settings`."""
    s = Settings.load(data_dir=tmp_path / f"s{len(list(tmp_path.iterdir()))}", **settings)
    bus, seen = EventBus(), []
    bus.subscribe("*", seen.append)
    safety, rules = build_detectors(engine, bus, Catalog.builtin(), settings=s)
    car = make_car(engine, make_owner(engine))
    feed = Feeder(engine, s.data_dir, [*safety.observers, *rules.observers])
    for ts, signals in messages:
        feed.telemetry(car.vin, ts, signals)
    rules.unsubscribe()
    return seen


def names(events) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.name for e in events]


# a 30 m/s^2 (3 g) spike at 60 km/h, then the car stands: below the default 40 m/s^2 impact
BUMP = [(T0, {SPEED: 60.0, ACC: 0.3}), (T0 + 200, {SPEED: 59.0, ACC: -30.0}),
        (T0 + 700, {SPEED: 0.0, ACC: 0.0})]


def test_the_crash_threshold_decides_whether_a_3g_spike_is_a_crash(engine, tmp_path):
    assert "crash_detected" not in names(run(engine, tmp_path, BUMP))
    assert "crash_detected" in names(run(engine, tmp_path, BUMP, crash_accel_threshold_ms2=25.0))


def parked_then_towed(metres: float) -> list[tuple[int, dict]]:
    lat, lon = offset(*HOME, metres, 0)
    return [(T0, {LOCKED: True, IGN: "OFF", LAT: HOME[0], LON: HOME[1], SPEED: 0.0}),
            (T0 + 60_000, {LAT: lat, LON: lon})]


def test_the_unauthorised_movement_radius_is_a_setting(engine, tmp_path):
    assert "unauthorised_movement_detected" in names(run(engine, tmp_path, parked_then_towed(120)))
    assert "unauthorised_movement_detected" not in names(
        run(engine, tmp_path, parked_then_towed(120), unauthorised_movement_radius_m=200.0))


def drive_with_a_brake(decel_ms2: float) -> list[tuple[int, dict]]:
    out = [(T0, {IGN: "ON", SPEED: 0.0})]
    for i in range(1, 40):
        north = i * 50 / 3.6
        out.append((T0 + i * 1000, {SPEED: 50.0, ACC: -decel_ms2 if i == 20 else 0.2,
                                    **dict(zip((LAT, LON), offset(*HOME, north, 0), strict=True))}))
    out.append((T0 + 41_000, {IGN: "OFF", SPEED: 0.0}))
    return out


def test_harsh_braking_counts_against_the_configured_deceleration(engine, tmp_path):
    def harsh_brakes(**settings) -> int:  # type: ignore[no-untyped-def]
        seen = run(engine, tmp_path, drive_with_a_brake(4.0), **settings)
        [ended] = [e for e in seen if e.name == "trip_ended"]
        return ended.data["harsh_brakes"]

    assert harsh_brakes() == 1, "4 m/s^2 is beyond the default 3.5"
    assert harsh_brakes(trip_harsh_braking_ms2=5.0) == 0


def test_the_default_settings_are_the_detectors_own_defaults():
    s = Settings.model_construct()
    assert crash_rules(s) == CrashRules()
    guard = MovementGuard()
    assert (s.unauthorised_movement_speed_kmh, s.unauthorised_movement_radius_m) == (guard.speed_kmh,
                                                                                     guard.radius_m)
    assert (s.stolen_tracking_interval_ms, s.stolen_tracking_duration_s) == (TRACKING_INTERVAL_MS,
                                                                             TRACKING_DURATION_S)
    assert (-s.trip_harsh_braking_ms2, s.trip_harsh_acceleration_ms2, s.trip_harsh_rearm_ms2) == (
        HARSH_BRAKE_MS2, HARSH_ACCEL_MS2, REARM_MS2)
    fence = inspect.signature(GeofenceDetector).parameters
    assert (s.geofence_margin_m, s.geofence_confirm_fixes) == (fence["margin_m"].default,
                                                               fence["confirm_fixes"].default)
