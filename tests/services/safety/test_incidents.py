"""Crash -> one incident per crash, the grace period, and the lifecycle with notes."""

from __future__ import annotations

import pytest

from chelian.errors import ConflictError
from chelian.ingest.batch import EventRow
from chelian.services.safety import names as n
from chelian.services.safety.crash import CrashObserver
from chelian.storage.repositories import incidents as repo
from chelian.storage.repositories import notifications
from tests.services.safety.helpers import drive, events, row, telemetry

AIRBAG = "Vehicle.Cabin.Seat.Row1.PassengerSide.Airbag.IsDeployed"


def crash_rows(car_id: int, t0: int, seq0: int = 1):
    return drive(
        car_id,
        seq0,
        t0,
        [(70.0, 0.0), (70.0, -61.0), (0.0, 0.0)],
        **{"Vehicle.CurrentLocation.Latitude": 48.85, "Vehicle.CurrentLocation.Longitude": 2.35},
    )


def listed(safety):
    with safety.engine.connect() as conn:
        return repo.for_vehicle(conn, safety.car.id, 10)


def test_several_messages_about_one_crash_open_one_incident(safety):
    observer = CrashObserver(safety.incidents)
    t0 = safety.clock.now
    observer.on_committed(telemetry(*crash_rows(safety.car.id, t0)))
    observer.on_committed(telemetry(row(safety.car.id, 4, t0 + 600, {AIRBAG: True, "Vehicle.Speed": 0.0})))
    observer.on_committed(
        events(EventRow(safety.car.id, 5, "crash", t0 + 700, t0 + 700, {"severity": "high"}))
    )
    found = listed(safety)
    assert len(found) == 1
    incident = found[0]
    assert (incident.status, incident.cause, incident.speed_before_kmh) == ("open", "impact", 70.0)
    assert (incident.latitude, incident.longitude) == (48.85, 2.35)
    assert incident.key == f"crash:{safety.car.vin}:t3"
    assert safety.names() == [n.CRASH_DETECTED, n.INCIDENT_OPENED]
    with safety.engine.connect() as conn:
        notes = [u.note for u in repo.updates(conn, incident.id)]
    assert notes[0] == "crash detected (impact)" and len(notes) == 3


def test_a_crash_after_the_window_is_a_new_incident(safety):
    observer = CrashObserver(safety.incidents)
    t0 = safety.clock.now
    observer.on_committed(telemetry(*crash_rows(safety.car.id, t0)))
    observer.on_committed(telemetry(*crash_rows(safety.car.id, t0 + 10 * 60_000, seq0=10)))
    assert len(listed(safety)) == 2


def test_explicit_crash_event_fills_location_from_the_event(safety):
    t0 = safety.clock.now
    CrashObserver(safety.incidents).on_committed(
        events(
            EventRow(
                safety.car.id,
                9,
                "crash",
                t0,
                t0,
                {"lat": 1.5, "lon": 2.5, "speed": 33.0, "heading": 180.0, "occupants": 2},
            )
        )
    )
    [incident] = listed(safety)
    assert (
        incident.cause,
        incident.latitude,
        incident.longitude,
        incident.speed_before_kmh,
        incident.heading,
        incident.occupants,
    ) == ("car_event", 1.5, 2.5, 33.0, 180.0, 2)


def test_car_cancels_within_grace_and_notifications_are_withdrawn(safety):
    with safety.engine.begin() as conn:
        notifications.add_contact(conn, safety.owner.id, "Mum", "mum@example.com", None, safety.clock.now)
    observer = CrashObserver(safety.incidents)
    observer.on_committed(events(EventRow(safety.car.id, 1, "crash", safety.clock.now, safety.clock.now, {})))
    [incident] = listed(safety)
    with safety.engine.connect() as conn:
        pending = notifications.for_subject(conn, f"incident:{incident.id}")
    assert sorted(p.target for p in pending) == sorted([safety.owner.email, "mum@example.com"])
    assert all(p.next_attempt_ms == incident.grace_until_ms for p in pending)
    safety.clock.now += 10_000
    observer.on_committed(
        events(EventRow(safety.car.id, 2, "crash_cancelled", safety.clock.now, safety.clock.now, {}))
    )
    [incident] = listed(safety)
    assert incident.status == "cancelled"
    assert safety.names()[-1] == n.INCIDENT_CANCELLED
    with safety.engine.connect() as conn:
        assert {p.status for p in notifications.for_subject(conn, f"incident:{incident.id}")} == {"cancelled"}


def test_cancel_after_grace_is_refused(safety):
    observer = CrashObserver(safety.incidents)
    observer.on_committed(events(EventRow(safety.car.id, 1, "crash", safety.clock.now, safety.clock.now, {})))
    safety.clock.now += 31_000
    observer.on_committed(
        events(EventRow(safety.car.id, 2, "crash_cancelled", safety.clock.now, safety.clock.now, {}))
    )
    [incident] = listed(safety)
    assert incident.status == "open"
    with pytest.raises(ConflictError, match="grace period"):
        safety.incidents.transition(safety.car.id, incident.id, "cancel", "owner")


def test_lifecycle_with_notes_and_refused_transitions(safety):
    CrashObserver(safety.incidents).on_committed(
        events(EventRow(safety.car.id, 1, "crash", safety.clock.now, safety.clock.now, {}))
    )
    [incident] = listed(safety)
    svc = safety.incidents
    assert (
        svc.transition(safety.car.id, incident.id, "acknowledge", "owner:1", "on it").status == "acknowledged"
    )
    with pytest.raises(ConflictError, match="acknowledged"):
        svc.transition(safety.car.id, incident.id, "acknowledge", "owner:1")
    svc.transition(safety.car.id, incident.id, "dispatch", "owner:1", "ambulance called")
    svc.add_note(safety.car.id, incident.id, "owner:1", "driver is fine")
    assert svc.transition(safety.car.id, incident.id, "close", "owner:1", "towed").status == "closed"
    with pytest.raises(ConflictError):
        svc.transition(safety.car.id, incident.id, "dispatch", "owner:1")
    with safety.engine.connect() as conn:
        history = [(u.status, u.note) for u in repo.updates(conn, incident.id)]
    assert history == [
        ("open", "crash detected (car_event)"),
        ("acknowledged", "on it"),
        ("dispatched", "ambulance called"),
        ("dispatched", "driver is fine"),
        ("closed", "towed"),
    ]
    assert safety.names()[-4:] == [
        n.INCIDENT_ACKNOWLEDGED,
        n.INCIDENT_DISPATCHED,
        n.INCIDENT_NOTE_ADDED,
        n.INCIDENT_CLOSED,
    ]


def test_incident_and_its_notifications_are_stored_together(safety):
    """Nobody listens on this bus: the outbox rows come from the incident's own transaction."""
    from chelian.events import EventBus
    from chelian.services.notifications.outbox import Notifier
    from chelian.services.safety.announce import Announcer
    from chelian.services.safety.incidents import IncidentService

    quiet = IncidentService(
        safety.engine,
        Announcer(safety.engine, EventBus()),
        outbox=Notifier(safety.engine, clock=safety.clock).enqueue,
        clock=safety.clock,
    )
    CrashObserver(quiet).on_committed(
        events(EventRow(safety.car.id, 1, "crash", safety.clock.now, safety.clock.now, {}))
    )
    [incident] = listed(safety)
    with safety.engine.connect() as conn:
        [row] = notifications.for_subject(conn, f"incident:{incident.id}")
    assert (row.channel, row.target, row.event) == ("email", safety.owner.email, n.INCIDENT_OPENED)
