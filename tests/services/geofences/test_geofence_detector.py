"""Geofence enter/exit through the ingest path: confirmation, jitter on the border, restart."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from chelian.events import EventBus
from chelian.services.geofences.detector import GeofenceDetector
from chelian.services.geofences.index import FenceIndex
from chelian.services.geofences.shapes import circle, polygon
from chelian.storage.db import now_ms
from chelian.storage.repositories import geofences as repo
from chelian.storage.repositories import vehicles
from chelian.storage.tables_rules import alerts, geofence_states
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import T0, Feeder, offset

HOME = (48.8566, 2.3522)


def vehicle_id(engine, vin: str) -> int:
    with engine.connect() as conn:
        return vehicles.by_vin(conn, vin).id


def add_circle(engine, owner_id, vehicle_id=None, center=HOME, radius_m=200.0, name="home") -> int:
    with engine.begin() as conn:
        return repo.create(conn, owner_id=owner_id, vehicle_id=vehicle_id, name=name, kind="circle",
                           center_lat=center[0], center_lon=center[1], radius_m=radius_m, created_ms=now_ms())


@pytest.fixture
def setup(engine, tmp_path):
    owner = make_owner(engine)
    car = make_car(engine, owner)
    bus = EventBus()
    seen = []
    bus.subscribe("*", seen.append)
    fence_id = add_circle(engine, owner.id)
    detector = GeofenceDetector(engine, bus, poll_s=0)
    return owner, car, Feeder(engine, tmp_path, [detector]), detector, seen, fence_id


def names(seen):
    return [e.name for e in seen]


def test_entering_and_leaving_alert_once_each_after_two_fixes(engine, setup):
    owner, car, feed, detector, seen, fence_id = setup
    path = [-600, -400, -100, 0, 50, 0, -150, -400, -800]  # metres north of the center
    for i, north in enumerate(path):
        feed.at(car.vin, T0 + i * 1000, *offset(*HOME, north, 0))
    assert names(seen) == ["geofence_entered", "geofence_exited"]
    entered, exited = seen
    assert entered.ts_ms == T0 + 3000  # second fix inside (-100 m, then 0 m)
    assert exited.ts_ms == T0 + 8000  # -400 m is 200 m out, -800 m confirms
    assert entered.data["geofence_id"] == fence_id and entered.vin == car.vin
    with engine.connect() as conn:
        stored = sorted(conn.execute(select(alerts.c.type)).scalars())
        assert stored == ["geofence_entered", "geofence_exited"]
        assert conn.execute(select(geofence_states)).all() == []


def test_a_car_parked_on_the_border_with_gps_jitter_never_flaps(engine, setup):
    owner, car, feed, detector, seen, _ = setup
    rng = random.Random(7)
    # parked exactly on the 200 m circle; jitter up to 20 m, and a lone 40 m outlier now and then
    for i in range(300):
        north = -200 + rng.uniform(-20, 20)
        if i % 37 == 0:
            north = -200 + (40 if i % 2 else -40)
        feed.at(car.vin, T0 + i * 1000, *offset(*HOME, north, rng.uniform(-3, 3)))
    assert seen == []


def test_one_fix_inside_is_not_an_entry(engine, setup):
    owner, car, feed, detector, seen, _ = setup
    feed.at(car.vin, T0, *offset(*HOME, -500, 0))
    feed.at(car.vin, T0 + 1000, *HOME)          # a single glitch into the fence
    feed.at(car.vin, T0 + 2000, *offset(*HOME, -500, 0))
    assert seen == []


def test_late_old_fixes_do_not_move_the_car(engine, setup):
    owner, car, feed, detector, seen, _ = setup
    far = offset(*HOME, -2000, 0)
    feed.at(car.vin, T0 + 10_000, *far)
    feed.at(car.vin, T0 + 1000, *HOME)   # replayed from the car's queue, older than its last fix
    feed.at(car.vin, T0 + 2000, *HOME)
    feed.at(car.vin, T0 + 11_000, *far)
    assert seen == []


def test_state_survives_a_restart_without_realerting(engine, setup, tmp_path):
    owner, car, feed, detector, seen, fence_id = setup
    for i in range(3):
        feed.at(car.vin, T0 + i * 1000, *HOME)
    assert names(seen) == ["geofence_entered"]
    bus2, seen2 = EventBus(), []
    bus2.subscribe("*", seen2.append)
    restarted = GeofenceDetector(engine, bus2, poll_s=0)
    assert restarted.inside(vehicle_id(engine, car.vin)) == {fence_id}
    feed2 = Feeder(engine, tmp_path, [restarted])
    feed2.at(car.vin, T0 + 10_000, *HOME)
    feed2.at(car.vin, T0 + 11_000, *HOME)
    assert seen2 == []
    far = offset(*HOME, 5000, 0)
    feed2.at(car.vin, T0 + 12_000, *far)
    feed2.at(car.vin, T0 + 13_000, *far)
    assert names(seen2) == ["geofence_exited"]


def test_owner_fences_cover_all_their_cars_but_not_strangers(engine, setup, tmp_path):
    owner, car, feed, detector, seen, _ = setup
    second = make_car(engine, owner)
    stranger = make_car(engine, make_owner(engine))
    square = {"type": "Polygon", "coordinates": [[[2.0, 48.0], [2.01, 48.0], [2.01, 48.01], [2.0, 48.01],
                                                  [2.0, 48.0]]]}
    with engine.begin() as conn:
        repo.create(conn, owner_id=owner.id, vehicle_id=None, name="depot", kind="polygon", geometry=square,
                    created_ms=now_ms())
    detector.index.refresh(force=True)
    for vin in (second.vin, stranger.vin):
        for i in range(3):
            feed.at(vin, T0 + i * 1000, 48.005, 2.005)
    assert [(e.name, e.vin, e.data["name"]) for e in seen] == [("geofence_entered", second.vin, "depot")]


def test_deleting_a_fence_forgets_it_without_an_exit_alert(engine, setup):
    owner, car, feed, detector, seen, fence_id = setup
    for i in range(2):
        feed.at(car.vin, T0 + i * 1000, *HOME)
    with engine.begin() as conn:
        assert repo.delete_owned(conn, owner.id, fence_id)
    feed.at(car.vin, T0 + 5000, *offset(*HOME, 3000, 0))
    feed.at(car.vin, T0 + 6000, *offset(*HOME, 3000, 0))
    assert names(seen) == ["geofence_entered"]


def test_far_fences_are_not_candidates():
    index = FenceIndex(engine=None, margin_m=25)  # type: ignore[arg-type]
    rng = random.Random(1)
    fences = [circle(i, owner_id=1, vehicle_id=None, name=str(i), lat=rng.uniform(40, 50),
                     lon=rng.uniform(0, 10), radius_m=300) for i in range(10_000)]
    near = circle(10_000, owner_id=1, vehicle_id=None, name="near", lat=60.0, lon=20.0, radius_m=300)
    index.build([*fences, near])
    (found,) = index.candidates([60.001], [20.0])
    assert [f.name for f in found] == ["near"]


def test_polygon_signed_distance_is_in_metres():
    square = {"type": "Polygon", "coordinates": [[[2.0, 48.0], [2.01, 48.0], [2.01, 48.01], [2.0, 48.01],
                                                  [2.0, 48.0]]]}
    fence = polygon(1, owner_id=1, vehicle_id=None, name="sq", geometry=square)
    lat, lon = offset(48.0, 2.005, -100, 0)
    assert fence.signed_distance_m(lat, lon) == pytest.approx(100, rel=0.02)
    # the centre is 0.005 degrees of longitude (372 m at 48 N) from the nearest edge
    assert fence.signed_distance_m(48.005, 2.005) == pytest.approx(-0.005 * 111_195 * 0.6691, rel=0.01)
