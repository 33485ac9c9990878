"""Trips from ignition and motion on synthetic drives; parked cars make no trips."""

from __future__ import annotations

import random

import pytest

from chelian.events import EventBus
from chelian.services.trips.detector import TripDetector
from chelian.services.trips.score import driving_score
from chelian.storage.repositories import trips as repo
from chelian.storage.repositories import vehicles
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import LAT, LON, T0, Feeder, offset

IGN, SPEED, ODO = "Vehicle.LowVoltageSystemState", "Vehicle.Speed", "Vehicle.TraveledDistance"
ACC, FUEL = "Vehicle.Acceleration.Longitudinal", "Vehicle.Powertrain.FuelSystem.RelativeLevel"
START = (45.7640, 4.8357)


@pytest.fixture
def rig(engine, tmp_path):
    car = make_car(engine, make_owner(engine))
    with engine.connect() as conn:
        vid = vehicles.by_vin(conn, car.vin).id
    bus, seen = EventBus(), []
    bus.subscribe("*", seen.append)
    detector = TripDetector(engine, bus, checkpoint_s=10)
    return car, vid, Feeder(engine, tmp_path, [detector]), detector, seen


def drive(seconds: int, t0: int, *, speed=50.0, odo0=100_000, brake_at=None, with_accel=True):  # type: ignore[no-untyped-def]
    """1 Hz messages of a car driving north at `speed` km/h; optional hard braking at one second."""
    out = []
    for i in range(seconds):
        north = i * speed / 3.6
        msg = {SPEED: speed, ODO: odo0 + int(north), FUEL: 50 if i < seconds // 2 else 49,
               **dict(zip((LAT, LON), offset(*START, north, 0), strict=True))}
        if with_accel:
            msg[ACC] = -6.0 if brake_at is not None and i in (brake_at, brake_at + 1) else 0.2
        elif brake_at is not None and i == brake_at:
            msg[SPEED] = speed - 25  # 25 km/h lost in one second: 6.9 m/s^2
        out.append((t0 + i * 1000, msg))
    return out


def test_a_drive_is_one_trip_with_its_figures(rig, engine):
    car, vid, feed, detector, seen = rig
    feed.telemetry(car.vin, T0, {IGN: "ON", SPEED: 0.0})
    messages = drive(120, T0 + 5000, brake_at=60)
    for i in range(0, 120, 10):
        feed.batch(car.vin, messages[i:i + 10])
    feed.telemetry(car.vin, T0 + 130_000, {IGN: "OFF", SPEED: 0.0})
    assert [e.name for e in seen] == ["trip_started", "trip_ended"]
    ended = seen[1].data
    assert ended["start_ms"] == T0                       # from ignition on, not first motion
    assert ended["end_ms"] == T0 + 130_000
    assert ended["duration_s"] == 130
    assert ended["distance_m"] == pytest.approx(119 * 50 / 3.6, abs=2)  # odometer delta
    assert (ended["harsh_brakes"], ended["harsh_accels"], ended["max_speed_kmh"]) == (1, 0, 50.0)
    assert ended["fuel_used_pct"] == 1
    assert ended["score"] == driving_score(ended["distance_m"], 1, 0, 50.0)
    with engine.connect() as conn:
        (row,) = repo.for_vehicle(conn, vid, 0, T0 * 2, 10)
        assert (row.open, row.harsh_brakes, row.start_lat) == (False, 1, pytest.approx(START[0]))
        track = repo.track(conn, vid, row.start_ms, row.end_ms)
    assert len(track) == 120 and track[0][1] == pytest.approx(START[0])


def test_parked_car_with_gps_jitter_and_ignition_off_makes_no_trip(rig):
    car, vid, feed, detector, seen = rig
    rng = random.Random(3)
    feed.telemetry(car.vin, T0, {IGN: "OFF"})
    for i in range(100):
        lat, lon = offset(*START, rng.uniform(-15, 15), rng.uniform(-15, 15))
        feed.telemetry(car.vin, T0 + 1000 + i * 1000, {LAT: lat, LON: lon, SPEED: rng.uniform(0, 4.9)})
    feed.telemetry(car.vin, T0 + 200_000, {IGN: "ON", SPEED: 0.0})  # engine idling, not moving
    assert seen == []


def test_harsh_braking_from_speed_derivative_and_idle_end(rig):
    car, vid, feed, detector, seen = rig
    feed.batch(car.vin, drive(60, T0, brake_at=30, with_accel=False))   # no ignition signal at all
    feed.telemetry(car.vin, T0 + 60_000 + 601_000, {SPEED: 0.0})         # parked > 10 min
    assert [e.name for e in seen] == ["trip_started", "trip_ended"]
    ended = seen[1].data
    # the 25 km/h drop is one harsh brake; the jump back straight after is the same excursion
    assert (ended["harsh_brakes"], ended["harsh_accels"]) == (1, 0)
    assert ended["end_ms"] == T0 + 59_000


def test_a_restart_resumes_the_open_trip(rig, engine, tmp_path):
    car, vid, feed, detector, seen = rig
    messages = drive(60, T0 + 1000)
    feed.telemetry(car.vin, T0, {IGN: "START"})
    feed.batch(car.vin, messages[:30])
    restarted = TripDetector(engine, None, checkpoint_s=10)
    trip = restarted.open_trip(vid)
    assert trip is not None and trip.odo_first == 100_000
    feed2 = Feeder(engine, tmp_path, [restarted])
    feed2.batch(car.vin, messages[30:])
    feed2.telemetry(car.vin, T0 + 70_000, {IGN: "LOCK"})
    with engine.connect() as conn:
        (row,) = repo.for_vehicle(conn, vid, 0, T0 * 2, 10)
    assert (row.open, row.start_ms) == (False, T0)
    assert row.distance_m == pytest.approx(59 * 50 / 3.6, abs=2)


def test_score_formula():
    assert driving_score(50_000, 0, 0, 120) == 100
    assert driving_score(50_000, 1, 1, 120) == 100 - 8 - 6
    assert driving_score(500, 1, 0, 150) == 0        # 1 km floor: 400 points per brake
    assert driving_score(200_000, 0, 0, 150) == 90
