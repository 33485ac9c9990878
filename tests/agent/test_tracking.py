"""High-rate location tracking in the car: the signed command sets it, the agent's sampling
obeys it (counted in the outbox on a clock the test turns), and it lapses by itself."""

from __future__ import annotations

import json

import pytest

from chelian.agent.runtime import Agent, LinkSettings
from chelian.agent.store_forward import QueueDB
from chelian.agent.tracking import TRACKED, Tracking
from chelian.link import topics
from chelian.services.commands import catalog
from tests.agent.helpers import ManualClock, ScriptedSource
from tests.services.commands.car import T0, VIN, make_car

LAT = "Vehicle.CurrentLocation.Latitude"
POSITION = {LAT: 42.5063, "Vehicle.CurrentLocation.Longitude": 1.5218,
            "Vehicle.CurrentLocation.Heading": 90.0}


def test_due_times_sit_on_the_interval_grid_and_tolerate_jitter():
    tracking = Tracking()
    tracking.start(interval_ms=1000, duration_s=60, now_ms=T0)
    ticks = [T0, T0 + 997, T0 + 2004, T0 + 2990, T0 + 4001]  # a 1 Hz tick that jitters
    assert [tracking.due(t) for t in ticks] == [True] * 5
    fast = Tracking()
    fast.start(interval_ms=1000, duration_s=60, now_ms=T0)
    sent = [t - T0 for t in range(T0, T0 + 10_000, 100) if fast.due(t)]  # a 10 Hz tick
    assert sent == list(range(0, 10_000, 1000)), "one fix per interval, on the tick nearest its slot"


def test_tracking_lapses_by_itself_and_zero_duration_stops_it():
    tracking = Tracking()
    tracking.start(interval_ms=500, duration_s=10, now_ms=T0)
    assert tracking.interval_s(T0 + 9_999) == 0.5
    assert tracking.interval_s(T0 + 10_000) is None and not tracking.due(T0 + 10_000)
    tracking.start(interval_ms=500, duration_s=10, now_ms=T0)
    assert tracking.start(interval_ms=500, duration_s=0, now_ms=T0 + 1) is None
    assert tracking.active(T0 + 2) is None


def test_a_car_that_slept_restarts_the_grid_instead_of_bursting():
    tracking = Tracking()
    tracking.start(interval_ms=1000, duration_s=600, now_ms=T0)
    assert tracking.due(T0)
    assert tracking.due(T0 + 30_000)
    assert not tracking.due(T0 + 30_100), "no catch-up burst for the 29 missed slots"
    assert tracking.due(T0 + 31_000)


@pytest.fixture
def car(tmp_path):
    return make_car(tmp_path)


def test_the_signed_command_sets_tracking_and_the_ack_says_until_when(car):
    ack = car.send(car.platform.signed(VIN, "set_tracking", {"interval_ms": 500, "duration_s": 120}, iat=T0))
    assert (ack.status, ack.result) == ("succeeded", {"tracking": True, "interval_ms": 500,
                                                      "until_ms": T0 + 120_000})
    assert car.executor.tracking.interval_s(T0 + 1_000) == 0.5
    rebooted = car.reopen()
    assert rebooted.executor.tracking.interval_s(T0 + 1_000) == 0.5, "a reboot keeps tracking until it lapses"
    car.clock.now = T0 + 120_000
    assert rebooted.executor.tracking.interval_s(car.clock()) is None
    stop = car.platform.signed(VIN, "set_tracking", {"duration_s": 0}, iat=T0)
    car.clock.now = T0
    assert car.send(stop).result == {"tracking": False}
    assert car.executor.tracking.active(T0) is None and car.reopen().executor.tracking.active(T0) is None


def test_drivers_and_guests_may_not_track_and_bad_arguments_are_malformed(car):
    guest = type(car.platform)()
    enrol = car.owner.signed(VIN, "enrol_key", {"kid": guest.kid, "pub": guest.public, "role": "guest"},
                             iat=T0)
    assert car.send(enrol).status == "succeeded"
    refused = car.send(guest.signed(VIN, "set_tracking", {"duration_s": 60}, iat=T0))
    assert (refused.status, refused.reason) == ("rejected", catalog.INSUFFICIENT_ROLE)
    bad = car.send(car.platform.signed(VIN, "set_tracking", {"interval_ms": 10}, iat=T0))
    assert (bad.status, bad.reason) == ("rejected", catalog.MALFORMED)
    assert "interval_ms" in bad.result["detail"]
    assert car.executor.tracking.active(T0) is None


def telemetry_sent(agent: Agent) -> list[dict]:
    rows = agent.outbox.peek(10_000)
    return [json.loads(r.payload)["signals"] for r in rows if r.channel == topics.TELEMETRY]


def make_agent(tmp_path, source, clock, tracking=None) -> Agent:
    link = LinkSettings("127.0.0.1", 1, VIN, "secret")
    outbox = QueueDB(tmp_path / "queue.db").outbox(VIN)
    return Agent(VIN, link, source, outbox, clock=clock, tracking=tracking)


def test_a_parked_car_reports_its_position_every_interval_only_while_tracking(tmp_path):
    """Parked, the position never changes: without tracking it goes out once (then only at the
    minute's heartbeat); tracking at 500 ms sends it at every due tick of a 10 Hz sampler."""
    clock, tracking = ManualClock(T0), Tracking()
    source = ScriptedSource(extra=POSITION)
    agent = make_agent(tmp_path, source, clock, tracking)

    def run(seconds: int) -> int:
        before = sum(LAT in s for s in telemetry_sent(agent))
        for _ in range(seconds * 10):
            agent.tick()
            clock.advance(100)
        return sum(LAT in s for s in telemetry_sent(agent)) - before

    assert run(20) == 1, "normal rate: the first fix, then nothing while it stands still"
    tracking.start(interval_ms=500, duration_s=10, now_ms=clock())
    assert run(10) == 20
    assert all(set(TRACKED) <= set(s) for s in telemetry_sent(agent)[-20:])
    assert run(20) == 0, "lapsed after 10 s: back to deadband and heartbeat"


def test_tracking_raises_the_sampling_rate_of_a_slow_agent(tmp_path):
    clock, tracking = ManualClock(T0), Tracking()
    agent = make_agent(tmp_path, ScriptedSource(extra=POSITION), clock, tracking)
    assert agent.tick_period_s(rate_hz=0.2) == 5.0
    tracking.start(interval_ms=250, duration_s=5, now_ms=clock())
    assert agent.tick_period_s(rate_hz=0.2) == 0.25 and agent.tick_period_s(rate_hz=10) == 0.1
    clock.advance(5_000)
    assert agent.tick_period_s(rate_hz=0.2) == 5.0


def test_the_agent_uses_its_command_executors_tracking(car, tmp_path):
    agent = Agent(VIN, LinkSettings("127.0.0.1", 1, VIN, "secret"), ScriptedSource(extra=POSITION),
                  QueueDB(tmp_path / "queue.db").outbox(VIN), commands=car.executor, clock=car.clock)
    assert agent.tracking is car.executor.tracking
