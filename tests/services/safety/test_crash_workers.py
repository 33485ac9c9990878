"""An impact whose spike and speed collapse reach different ingest workers (a `$share` group
deals a car's messages out round-robin) is still one crash, whichever worker commits first."""

from __future__ import annotations

import pytest

from chelian.events import EventBus
from chelian.services.safety.crash import CrashObserver, CrashRules
from chelian.services.safety.platform import SafetyServices
from chelian.signals import Catalog
from chelian.storage.repositories import incidents, vehicles
from tests.factories import make_car, make_owner
from tests.services.geofences.feeding import T0, Feeder

SPEED, ACC = "Vehicle.Speed", "Vehicle.Acceleration.Longitudinal"
CRUISE = (T0, {SPEED: 62.0, ACC: 0.2})
SPIKE = (T0 + 200, {SPEED: 60.0, ACC: -58.0})
COLLAPSE = (T0 + 600, {SPEED: 3.0, ACC: -12.0})
STOPPED = (T0 + 900, {SPEED: 0.0, ACC: 0.0})


def worker(engine, path, *, shared_history: bool = True) -> Feeder:  # type: ignore[no-untyped-def]
    """One ingest worker: its own processor and its own detectors, on the shared database."""
    safety = SafetyServices.build(engine, EventBus(), Catalog.builtin(), grace_ms=0)
    if not shared_history:  # what every worker did before: its own memory only
        safety.observers[0] = CrashObserver(safety.incidents, CrashRules())
    path.mkdir()
    return Feeder(engine, path, safety.observers)


@pytest.fixture
def car(engine):  # type: ignore[no-untyped-def]
    creds = make_car(engine, make_owner(engine))
    with engine.connect() as conn:
        return vehicles.by_vin(conn, creds.vin)


def crashes(engine, car) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return incidents.for_vehicle(conn, car.id, 10)


def test_spike_and_collapse_on_two_workers_make_one_incident(engine, car, tmp_path):
    a, b = worker(engine, tmp_path / "a"), worker(engine, tmp_path / "b")
    for feed, message in zip((a, b, a, b), (CRUISE, SPIKE, COLLAPSE, STOPPED), strict=True):
        feed.telemetry(car.vin, *message)
    [crash] = crashes(engine, car)
    assert (crash.cause, crash.speed_before_kmh) == ("impact", 62.0)


def test_the_spike_committed_last_still_finds_the_collapse(engine, car, tmp_path):
    a, b = worker(engine, tmp_path / "a"), worker(engine, tmp_path / "b")
    a.telemetry(car.vin, *CRUISE)
    b.telemetry(car.vin, *COLLAPSE)  # the collapse's worker was faster: nothing to see yet
    assert crashes(engine, car) == []
    a.telemetry(car.vin, *SPIKE)
    [crash] = crashes(engine, car)
    assert (crash.cause, crash.speed_before_kmh) == ("impact", 62.0)


def test_memory_alone_misses_the_split_crash(engine, car, tmp_path):
    a = worker(engine, tmp_path / "a", shared_history=False)
    b = worker(engine, tmp_path / "b", shared_history=False)
    a.telemetry(car.vin, *CRUISE)
    b.telemetry(car.vin, *COLLAPSE)
    a.telemetry(car.vin, *SPIKE)
    assert crashes(engine, car) == [], "the reason the stored window is read"


def test_a_hard_stop_split_over_workers_is_still_no_crash(engine, car, tmp_path):
    a, b = worker(engine, tmp_path / "a"), worker(engine, tmp_path / "b")
    speeds = [100.0 - 7.2 * i for i in range(14)] + [0.0, 0.0]  # about 1 g, no spike
    for i, speed in enumerate(speeds):
        (a, b)[i % 2].telemetry(car.vin, T0 + i * 200, {SPEED: max(speed, 0.0), ACC: -10.5})
    assert crashes(engine, car) == []


AIRBAG = "Vehicle.Cabin.Seat.Row1.DriverSide.Airbag.IsDeployed"


def test_a_deployed_airbag_first_seen_by_another_worker_later_is_no_second_crash(engine, car, tmp_path):
    a, b = worker(engine, tmp_path / "a"), worker(engine, tmp_path / "b")
    a.telemetry(car.vin, T0, {AIRBAG: False, SPEED: 50.0})
    b.telemetry(car.vin, T0 + 1000, {AIRBAG: True, SPEED: 0.0})
    a.telemetry(car.vin, T0 + 61_000, {AIRBAG: True})  # the heartbeat, on the worker that saw False
    late = worker(engine, tmp_path / "c")  # a third worker, or one restarted: no memory at all
    late.telemetry(car.vin, T0 + 181_000, {AIRBAG: True})  # outside the 2-minute crash window
    [crash] = crashes(engine, car)
    assert crash.cause == "airbag"
    with engine.connect() as conn:
        notes = [u.note for u in incidents.updates(conn, crash.id)]
    assert not any("further crash signal" in (note or "") for note in notes), notes


def test_an_airbag_deployed_in_the_first_message_a_worker_sees_is_a_crash(engine, car, tmp_path):
    late = worker(engine, tmp_path / "a")
    late.telemetry(car.vin, T0, {AIRBAG: True, SPEED: 0.0})
    assert [c.cause for c in crashes(engine, car)] == ["airbag"]
