"""Speed limit and curfew alerts, with the near misses that must stay silent."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from chelian.events import EventBus
from chelian.services.geofences.driving import DrivingRulesDetector, curfew_night
from chelian.storage.repositories import alerts as repo
from chelian.storage.repositories import vehicles
from chelian.storage.repositories.alerts import Rules
from chelian.storage.tables_rules import alerts
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import Feeder

PARIS = ZoneInfo("Europe/Paris")


def local_ms(y, mo, d, h, mi) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=PARIS).timestamp() * 1000)


@pytest.fixture
def rig(engine, tmp_path):
    car = make_car(engine, make_owner(engine))
    with engine.begin() as conn:
        vid = vehicles.by_vin(conn, car.vin).id
        repo.put_rules(conn, vid, Rules(speed_limit_kmh=90.0, curfew_start_min=22 * 60, curfew_end_min=6 * 60,
                                        timezone="Europe/Paris"))
    bus, seen = EventBus(), []
    bus.subscribe("*", seen.append)
    detector = DrivingRulesDetector(engine, bus, poll_s=0)
    return car, Feeder(engine, tmp_path, [detector]), seen


def test_speed_just_under_the_limit_never_alerts(rig):
    car, feed, seen = rig
    day = local_ms(2024, 5, 2, 12, 0)
    for i, v in enumerate([85.0, 89.5, 90.0, 89.9, 90.0, 88.0]):
        feed.telemetry(car.vin, day + i * 1000, {"Vehicle.Speed": v})
    assert seen == []


def test_one_alert_per_excursion_with_rearm_below_limit_minus_margin(rig, engine):
    car, feed, seen = rig
    day = local_ms(2024, 5, 2, 12, 0)
    speeds = [80.0, 91.0, 95.0, 89.0, 91.0, 84.0, 92.0]  # 89 is not low enough to re-arm; 84 is
    for i, v in enumerate(speeds):
        feed.telemetry(car.vin, day + i * 1000, {"Vehicle.Speed": v})
    assert [(e.name, e.data["speed_kmh"]) for e in seen] == [("speed_limit_exceeded", 91.0),
                                                            ("speed_limit_exceeded", 92.0)]
    with engine.connect() as conn:
        assert conn.execute(select(alerts.c.type)).scalars().all() == ["speed_limit_exceeded"] * 2


def test_curfew_in_the_owners_time_zone_once_per_night(rig):
    car, feed, seen = rig
    feed.telemetry(car.vin, local_ms(2024, 5, 2, 21, 50), {"Vehicle.LowVoltageSystemState": "ON"})
    feed.telemetry(car.vin, local_ms(2024, 5, 2, 21, 59), {"Vehicle.Speed": 40.0})
    assert seen == []  # 21:59 Paris is before the curfew (19:59 UTC would be inside a UTC reading)
    feed.telemetry(car.vin, local_ms(2024, 5, 2, 23, 10), {"Vehicle.Speed": 40.0})
    feed.telemetry(car.vin, local_ms(2024, 5, 3, 2, 0), {"Vehicle.Speed": 30.0})
    feed.telemetry(car.vin, local_ms(2024, 5, 3, 23, 0), {"Vehicle.Speed": 30.0})
    assert [e.data["night"] for e in seen] == ["2024-05-02", "2024-05-03"]


def test_parked_car_with_ignition_off_is_not_a_curfew_violation(rig):
    car, feed, seen = rig
    feed.telemetry(car.vin, local_ms(2024, 5, 2, 23, 0), {"Vehicle.LowVoltageSystemState": "OFF",
                                                          "Vehicle.Speed": 0.0})
    feed.telemetry(car.vin, local_ms(2024, 5, 3, 1, 0), {"Vehicle.Speed": 3.0})  # GPS creep, not driving
    assert seen == []


@pytest.mark.parametrize(("hhmm", "night"), [("21:59", None), ("22:00", "2024-05-02"),
                                             ("05:59", "2024-05-01"), ("06:00", None)])
def test_curfew_window_spanning_midnight(hhmm, night):
    h, m = map(int, hhmm.split(":"))
    rules = Rules(None, 22 * 60, 6 * 60, "Europe/Paris")
    assert curfew_night(rules, local_ms(2024, 5, 2, h, m)) == night
