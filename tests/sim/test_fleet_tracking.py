"""How the fleet's clock serves a car told to track at high rate: smaller physics steps, spread
over the period, so a tracked car's fixes differ and arrive on its interval."""

from __future__ import annotations

from chelian.sim.fleet import SLICES_PER_PERIOD, Fleet, SimCarConfig
from chelian.sim.models import sim_vin

T0 = 1_764_083_523_000


def fleet_of(n: int) -> Fleet:
    cars = [SimCarConfig(vin, vin, "secret") for vin in (sim_vin("sim@example.com", i) for i in range(n))]
    return Fleet(cars, "127.0.0.1", 1, rate_hz=1, random_faults=False)


def steps(plan, vin: str) -> list[tuple[int, float]]:
    return [(i, step) for i, group in enumerate(plan) for car, step in group if car.config.vin == vin]


def test_every_car_steps_once_per_period_spread_over_the_slices():
    fleet = fleet_of(4)
    plan = fleet.schedule(T0)
    assert len(plan) == SLICES_PER_PERIOD
    assert [steps(plan, vin) for vin in fleet.vins] == [[(0, 1.0)], [(2, 1.0)], [(5, 1.0)], [(7, 1.0)]]


def test_a_car_tracking_faster_than_the_period_is_stepped_finer_and_others_are_not():
    fleet = fleet_of(2)
    tracked, other = fleet.vins
    fleet.agent(tracked).tracking.start(interval_ms=250, duration_s=60, now_ms=T0)
    plan = fleet.schedule(T0 + 1_000)
    assert steps(plan, tracked) == [(0, 0.25), (2, 0.25), (5, 0.25), (7, 0.25)]
    assert steps(plan, other) == [(5, 1.0)]
    assert steps(fleet.schedule(T0 + 61_000), tracked) == [(0, 1.0)], "lapsed: back to one step"


def test_tracking_slower_than_the_period_needs_no_extra_steps():
    fleet = fleet_of(1)
    fleet.agent(fleet.vins[0]).tracking.start(interval_ms=2_000, duration_s=60, now_ms=T0)
    assert steps(fleet.schedule(T0), fleet.vins[0]) == [(0, 1.0)]
