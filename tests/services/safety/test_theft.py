"""Unauthorised movement vs a parked car's GPS jitter; stolen-car tracking, immobilise, recovery."""

from __future__ import annotations

import random

import pytest

from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.services.safety import names as n
from chelian.services.safety.movement import MovementGuard, MovementObserver
from chelian.services.safety.theft import TheftObserver, TheftService
from chelian.storage.repositories import theft as repo
from tests.services.safety.helpers import row, telemetry

T0 = 1_764_000_000_000
LAT, LON = 42.5063, 1.5218
PARKED = {"Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": True, "Vehicle.LowVoltageSystemState": "OFF"}
M_PER_DEG_LAT = 111_320.0


def at(seq: int, north_m: float = 0.0, speed: float = 0.0, **signals) -> object:
    return row(
        1,
        seq,
        T0 + seq * 1000,
        {
            "Vehicle.CurrentLocation.Latitude": LAT + north_m / M_PER_DEG_LAT,
            "Vehicle.CurrentLocation.Longitude": LON,
            "Vehicle.Speed": speed,
            **signals,
        },
    )


def movements(rows) -> list:
    guard = MovementGuard()
    return [m for m in map(guard.feed, rows) if m is not None]


def test_parked_car_gps_jitter_does_not_alert():
    rnd = random.Random(7)
    rows = [at(0, **PARKED)] + [at(i, north_m=rnd.uniform(-20, 20)) for i in range(1, 300)]
    assert movements(rows) == []


def test_towed_car_alerts_once_when_it_leaves_the_spot():
    rows = [at(0, **PARKED)] + [at(i, north_m=12.0 * i) for i in range(1, 10)]
    found = movements(rows)
    assert [m.seq for m in found] == [5]  # 60 m away: beyond the 50 m radius
    assert found[0].distance_m == pytest.approx(60.0, abs=0.5)


def test_speed_while_locked_and_off_alerts():
    assert [m.seq for m in movements([at(0, **PARKED), at(1, speed=14.0)])] == [1]


def test_owner_driving_off_does_not_alert_and_rearms_after_parking():
    rows = [
        at(0, **PARKED),
        at(1, **{"Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": False}),
        at(2, speed=30.0, **{"Vehicle.LowVoltageSystemState": "ON"}),
        at(3, north_m=2000.0, speed=50.0),
        at(4, north_m=3000.0, **PARKED),
        at(5, north_m=3003.0),
        at(6, north_m=3100.0),
    ]
    assert [m.seq for m in movements(rows)] == [6]


def test_stolen_car_is_tracked_announced_immobilised_and_recovered(safety):
    created = []

    class Commands:
        def create(self, vehicle, user_id, type_, args, expires_in_s=None, idempotency_key=None, *,
                   origin="user"):
            created.append((vehicle.vin, user_id, type_, args, expires_in_s, idempotency_key, origin))
            return type("Row", (), {"id": f"cmd-{len(created)}"})(), True

    service = TheftService(safety.engine, safety.announcer, lambda: Commands(), clock=safety.clock,
                           tracking_interval_ms=500, tracking_duration_s=7200)
    observer = TheftObserver(safety.engine, safety.announcer)
    cid = safety.car.id
    observer.on_committed(
        telemetry(
            row(
                cid,
                1,
                T0,
                {"Vehicle.CurrentLocation.Latitude": LAT, "Vehicle.CurrentLocation.Longitude": LON},
            )
        )
    )
    report = service.report(safety.car, safety.owner.id, "gone from the driveway")
    with pytest.raises(ConflictError):
        service.report(safety.car, safety.owner.id, None)
    moves = [
        row(
            cid,
            10 + i,
            T0 + i * 1000,
            {
                "Vehicle.CurrentLocation.Latitude": LAT + i * 0.001,
                "Vehicle.CurrentLocation.Longitude": LON,
                "Vehicle.Speed": 40.0,
            },
        )
        for i in range(5)
    ]
    observer.on_committed(telemetry(*moves))
    observer.on_committed(telemetry(*moves))  # redelivered rows would never reach it, but even so: once
    found, track = service.current(safety.car)
    assert found.id == report.id and [p.seq for p in track] == [10, 11, 12, 13, 14]
    assert safety.names().count(n.STOLEN_VEHICLE_MOVED) == 5
    vin, owner = safety.car.vin, safety.owner.id
    assert created == [(vin, owner, "set_tracking", {"interval_ms": 500, "duration_s": 7200}, 7200,
                        f"theft:{report.id}:track", "service:theft")], \
        "reporting it stolen speeds up its position reports, and the audit trail says the service did"
    assert service.immobilise(safety.car, safety.owner.id).immobilise_command_id == "cmd-2"
    assert created[1] == (vin, owner, "immobilise", {}, None, f"theft:{report.id}:immobilise", "user")
    recovered = service.recover(safety.car, "found two streets away")
    assert (recovered.status, recovered.recovery_note) == ("recovered", "found two streets away")
    assert created[2] == (vin, owner, "set_tracking", {"interval_ms": 500, "duration_s": 0}, 7200,
                          f"theft:{report.id}:untrack", "service:theft"), \
        "recovery returns it to its normal rate"
    stolen = [e for e in safety.seen if e.name in (n.VEHICLE_REPORTED_STOLEN, n.VEHICLE_RECOVERED)]
    assert [e.data["tracking_command_id"] for e in stolen] == ["cmd-1", "cmd-3"]
    observer.on_committed(
        telemetry(
            row(
                cid,
                99,
                T0 + 99_000,
                {"Vehicle.CurrentLocation.Latitude": LAT, "Vehicle.CurrentLocation.Longitude": LON},
            )
        )
    )
    assert [p.seq for p in service.current(safety.car)[1]] == [10, 11, 12, 13, 14]
    with pytest.raises(NotFoundError):
        service.immobilise(safety.car, safety.owner.id)
    assert safety.names()[0] == n.VEHICLE_REPORTED_STOLEN and safety.names()[-1] == n.VEHICLE_RECOVERED


def test_tracking_is_renewed_every_half_duration_while_the_car_is_stolen(safety):
    created = []

    class Commands:
        def create(self, vehicle, user_id, type_, args, expires_in_s=None, idempotency_key=None, *,
                   origin="user"):
            created.append((type_, args["duration_s"], idempotency_key))
            return type("Row", (), {"id": idempotency_key})(), True

    service = TheftService(safety.engine, safety.announcer, lambda: Commands(), clock=safety.clock,
                           tracking_duration_s=3600)
    observer = TheftObserver(safety.engine, safety.announcer, theft=service, clock=safety.clock)
    report = service.report(safety.car, safety.owner.id, None)

    def position(seq: int) -> None:
        safety.clock.now = T0 + seq * 60_000
        signals = {"Vehicle.CurrentLocation.Latitude": LAT + seq * 0.001,
                   "Vehicle.CurrentLocation.Longitude": LON}
        observer.on_committed(telemetry(row(safety.car.id, seq, safety.clock.now, signals)))

    for minute in range(1, 95):  # the car keeps reporting for an hour and a half
        position(minute)
    keys = [key for _type, _duration, key in created]
    assert keys == [f"theft:{report.id}:track", *(f"theft:{report.id}:track:{n}" for n in (1, 2, 3))], \
        "a new hour of tracking every 30 minutes"
    service.recover(safety.car, None)
    for minute in range(95, 200):
        position(minute)
    assert [key for _t, _d, key in created][4:] == [f"theft:{report.id}:untrack"], "recovered: no renewal"


def test_a_tracking_command_the_cloud_cannot_send_does_not_undo_the_report(safety):
    class Refusing:
        def create(self, *_args, **_kwargs):
            raise ValidationError("the car has no platform key")

    service = TheftService(safety.engine, safety.announcer, lambda: Refusing(), clock=safety.clock)
    report = service.report(safety.car, safety.owner.id, None)
    assert service.current(safety.car)[0].status == "active"
    assert service.recover(safety.car, None).id == report.id
    stolen = [e for e in safety.seen if e.name == n.VEHICLE_REPORTED_STOLEN]
    assert stolen[0].data["tracking_command_id"] is None


def test_immobilise_without_a_command_service_is_recorded(safety):
    service = TheftService(safety.engine, safety.announcer, lambda: None, clock=safety.clock)
    service.report(safety.car, safety.owner.id, None)
    report = service.immobilise(safety.car, safety.owner.id)
    assert report.immobilise_requested_ms == safety.clock.now and report.immobilise_command_id is None


def test_unauthorised_movement_is_announced_with_a_key_from_the_message(safety):
    observer = MovementObserver(safety.engine, safety.announcer)
    cid = safety.car.id
    observer.on_committed(
        telemetry(
            row(
                cid,
                1,
                T0,
                {**PARKED, "Vehicle.CurrentLocation.Latitude": LAT, "Vehicle.CurrentLocation.Longitude": LON},
            ),
            row(cid, 2, T0 + 1000, {"Vehicle.Speed": 12.0}),
        )
    )
    [event] = [e for e in safety.seen if e.name == n.UNAUTHORISED_MOVEMENT_DETECTED]
    assert event.key == f"unauthorised:{safety.car.vin}:2" and event.data["speed_kmh"] == 12.0
    with safety.engine.connect() as conn:
        assert repo.active(conn, cid) is None
