"""Roadside tickets from the car or the owner, with the health snapshot and the lifecycle."""

from __future__ import annotations

import pytest

from chelian.errors import ConflictError, ValidationError
from chelian.ingest.batch import EventRow
from chelian.services.safety import names as n
from chelian.services.safety.roadside import RoadsideObserver, RoadsideService
from chelian.signals import Catalog
from chelian.storage.repositories import roadside as repo
from chelian.storage.tables import latest_state
from tests.services.safety.helpers import events


def put_state(engine, vehicle_id, ts_ms, values: dict[str, tuple[float | None, str | None]]):
    with engine.begin() as conn:
        conn.execute(
            latest_state.insert(),
            [
                {
                    "vehicle_id": vehicle_id,
                    "path": p,
                    "ts_ms": ts_ms,
                    "received_ms": ts_ms,
                    "value_num": v,
                    "value_text": t,
                }
                for p, (v, t) in values.items()
            ],
        )


def service(safety) -> RoadsideService:
    return RoadsideService(safety.engine, safety.announcer, Catalog.builtin(), clock=safety.clock)


def test_car_request_carries_health_snapshot_and_last_position(safety):
    put_state(
        safety.engine,
        safety.car.id,
        safety.clock.now - 5000,
        {
            "Vehicle.LowVoltageBattery.CurrentVoltage": (11.2, None),
            "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": (95.0, None),
            "Vehicle.Powertrain.FuelSystem.RelativeLevel": (3.0, None),
            "Vehicle.Diagnostics.DTCList": (None, '["P0562"]'),
            "Vehicle.CurrentLocation.Latitude": (47.1, None),
            "Vehicle.CurrentLocation.Longitude": (8.2, None),
            "Vehicle.Speed": (0.0, None),
        },
    )
    observer = RoadsideObserver(service(safety))
    request = EventRow(
        safety.car.id,
        7,
        "roadside_requested",
        safety.clock.now,
        safety.clock.now,
        {"problem": "battery", "note": "won't start"},
    )
    observer.on_committed(events(request))
    observer.on_committed(events(request))  # the same event twice: one ticket
    with safety.engine.connect() as conn:
        [ticket] = repo.for_vehicle(conn, safety.car.id, 10)
    assert (ticket.source, ticket.problem, ticket.status) == ("car", "battery", "open")
    assert (ticket.latitude, ticket.longitude) == (47.1, 8.2)
    assert ticket.health["Vehicle.LowVoltageBattery.CurrentVoltage"]["value"] == 11.2
    assert ticket.health["Vehicle.Diagnostics.DTCList"]["value"] == ["P0562"]
    assert ticket.health["Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"]["value"] == 95.0
    assert "Vehicle.Speed" not in ticket.health
    assert safety.names() == [n.ROADSIDE_REQUESTED]


def test_unknown_problem_from_the_car_is_other_but_the_api_refuses_it(safety):
    svc = service(safety)
    RoadsideObserver(svc).on_committed(
        events(
            EventRow(
                safety.car.id,
                1,
                "roadside_requested",
                1,
                1,
                {"problem": "alien abduction", "lat": 1.0, "lon": 2.0},
            )
        )
    )
    with safety.engine.connect() as conn:
        [ticket] = repo.for_vehicle(conn, safety.car.id, 10)
    assert (ticket.problem, ticket.latitude, ticket.longitude) == ("other", 1.0, 2.0)
    with pytest.raises(ValidationError):
        svc.request(safety.car.id, "alien abduction", "owner")


def test_lifecycle_assign_en_route_resolve(safety):
    svc = service(safety)
    ticket = svc.request(safety.car.id, "flat_tyre", "owner", latitude=1.0, longitude=2.0, note="rear left")
    with pytest.raises(ValidationError):
        svc.transition(safety.car.id, ticket.id, "assign", "ops")
    with pytest.raises(ConflictError):
        svc.transition(safety.car.id, ticket.id, "en_route", "ops")
    assert svc.transition(safety.car.id, ticket.id, "assign", "ops", assignee="Tow Co").assignee == "Tow Co"
    svc.transition(safety.car.id, ticket.id, "en_route", "ops", "ETA 20 min")
    assert svc.transition(safety.car.id, ticket.id, "resolve", "ops", "tyre changed").status == "resolved"
    with pytest.raises(ConflictError):
        svc.transition(safety.car.id, ticket.id, "cancel", "owner:1")
    with safety.engine.connect() as conn:
        history = [(u.status, u.note) for u in repo.updates(conn, ticket.id)]
    assert history == [
        ("open", "rear left"),
        ("assigned", None),
        ("en_route", "ETA 20 min"),
        ("resolved", "tyre changed"),
    ]
