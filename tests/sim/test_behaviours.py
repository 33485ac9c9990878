"""Scripted scenarios produce the signal sequences they promise; the simulated actuators
change what the car reports."""

from __future__ import annotations

import random

import pytest

from chelian.agent.actuators import ActuationError
from chelian.signals import Catalog
from chelian.sim.behaviours import Breakdown, Crash, LeftUnlocked, RandomFaults, Scenario, parse_scenario
from chelian.sim.grid import StreetGrid
from chelian.sim.models import MODELS
from chelian.sim.source import SimActuators, SimSignalSource
from chelian.sim.vehicle import SimVehicle

CATALOG = Catalog.builtin()
GRID = StreetGrid.generate(42.2808, -83.7430, seed=11)
COMBUSTION = next(m for m in MODELS if m.powertrain == "COMBUSTION")
ELECTRIC = next(m for m in MODELS if m.powertrain == "ELECTRIC")
DRIVER_LOCK = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
AIRBAG = "Vehicle.Cabin.Seat.Row1.DriverSide.Airbag.IsDeployed"
HAZARD = "Vehicle.Body.Lights.Hazard.IsSignaling"
LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"


def run(car: SimVehicle, seconds: int, dt_s: float = 1.0) -> list[dict]:
    out = []
    for _ in range(int(seconds / dt_s)):
        signals = car.step(dt_s)
        for path, value in signals.items():
            CATALOG.check(path, value)
        out.append(signals)
    return out


def test_crash_is_a_violent_stop_with_airbags_then_nothing_moves():
    car = SimVehicle(COMBUSTION, GRID, seed=3)
    crash = Crash(after_s=30)
    car.behaviours.append(crash)
    samples = run(car, 1800)
    assert crash.happened
    i = next(i for i, s in enumerate(samples) if s[AIRBAG])
    before, impact, after = samples[i - 1], samples[i], samples[i + 1:]
    assert before["Vehicle.Speed"] >= 20 and not before[AIRBAG]
    assert impact["Vehicle.Speed"] == 0.0 and impact["Vehicle.Acceleration.Longitudinal"] < -30
    assert impact[HAZARD] and "B0001" in impact["Vehicle.Diagnostics.DTCList"]
    assert not impact[DRIVER_LOCK]  # unlocked for rescuers
    assert all(s["Vehicle.Speed"] == 0.0 and s[AIRBAG] and s[HAZARD] for s in after)
    positions = {(s[LAT], s[LON]) for s in after}
    assert len(positions) == 1
    assert after[0]["Vehicle.Acceleration.Longitudinal"] == 0.0  # the impact shows in one sample
    assert "crash_detected" in [kind for kind, _ in car.drain_events()]


@pytest.mark.parametrize(("model", "codes"), [(COMBUSTION, {"P0300", "P0301"}), (ELECTRIC, {"P0AA6"})])
def test_breakdown_raises_dtcs_then_pulls_over_with_hazards(model, codes):
    car = SimVehicle(model, GRID, seed=5)
    car.behaviours.append(Breakdown(after_s=20))
    samples = run(car, 1800, dt_s=0.5)
    first_dtc = next(i for i, s in enumerate(samples) if codes <= set(s["Vehicle.Diagnostics.DTCList"]))
    assert samples[first_dtc]["Vehicle.Speed"] > 0  # the codes come up while still driving
    stop = next(i for i in range(first_dtc, len(samples)) if samples[i]["Vehicle.Speed"] == 0)
    decels = [s["Vehicle.Acceleration.Longitudinal"] for s in samples[first_dtc:stop + 1]]
    assert min(decels) >= -4.5  # braked, not crashed
    assert all(s[HAZARD] and s["Vehicle.Speed"] == 0 for s in samples[stop:])
    assert not any(s[AIRBAG] for s in samples)
    assert car.phase == "stranded"


def test_a_car_left_unlocked_stays_parked_unlocked_until_locked_remotely():
    car = SimVehicle(COMBUSTION, GRID, seed=4)
    car.behaviours.append(LeftUnlocked(after_s=0, for_s=3600))
    samples = run(car, 1800)
    parked_unlocked = [s for s in samples if s["Vehicle.LowVoltageSystemState"] == "OFF"
                       and not s[DRIVER_LOCK] and not any(v for k, v in s.items() if k.endswith("IsOpen"))]
    assert len(parked_unlocked) > 600
    source = SimSignalSource(car)
    SimActuators(source).lock()
    assert source.snapshot()[DRIVER_LOCK] is True
    source.advance(60)
    assert source.snapshot()[DRIVER_LOCK] is True  # a remote lock holds


def test_actuators_change_what_the_car_reports():
    car = SimVehicle(ELECTRIC, GRID, seed=6)
    source = SimSignalSource(car)
    act = SimActuators(source)
    source.advance(1.0)
    assert car.phase == "parked" and source.snapshot()[DRIVER_LOCK] is True
    act.unlock()
    assert source.snapshot()[DRIVER_LOCK] is False
    act.lock()
    assert source.snapshot()[DRIVER_LOCK] is True
    act.honk_flash(2.0)
    assert source.snapshot()["Vehicle.Body.Horn.IsActive"] and source.snapshot()[HAZARD]
    source.advance(2.5)
    assert not source.snapshot()["Vehicle.Body.Horn.IsActive"] and not source.snapshot()[HAZARD]
    assert act.location()["lat"] == source.snapshot()["Vehicle.CurrentLocation.Latitude"]


def test_an_immobilised_car_does_not_drive_and_a_moving_one_is_not_immobilised():
    car = SimVehicle(COMBUSTION, GRID, seed=7)
    act = SimActuators(SimSignalSource(car))
    act.set_immobilised(True)
    assert all(s["Vehicle.Speed"] == 0 for s in run(car, 900))
    act.set_immobilised(False)
    assert any(s["Vehicle.Speed"] > 0 for s in run(car, 900))
    while car.mover.speed_ms == 0:
        car.step(1.0)
    with pytest.raises(ActuationError, match="moving"):
        act.set_immobilised(True)


def test_random_faults_come_and_go():
    car = SimVehicle(COMBUSTION, GRID, seed=8)
    faults = RandomFaults(rng=random.Random(1), per_hour=3.0)
    car.behaviours.append(faults)
    samples = run(car, 4 * 3600, dt_s=5.0)
    lists = [s["Vehicle.Diagnostics.DTCList"] for s in samples]
    assert any(lists) and any(not d for d in lists[len(lists) // 2:])  # raised, and cleared again
    assert all(s["Vehicle.Diagnostics.DTCCount"] == len(s["Vehicle.Diagnostics.DTCList"]) for s in samples)


def test_scenario_specs_parse_and_refuse_nonsense():
    assert parse_scenario("crash:3") == Scenario("crash", 3, 60.0)
    assert parse_scenario("unlocked:0@10") == Scenario("unlocked", 0, 10.0)
    assert isinstance(parse_scenario("breakdown:1@2.5").behaviour(), Breakdown)
    for bad in ("crash", "crash:x", "explode:1", "crash:1@soon"):
        with pytest.raises(ValueError):
            parse_scenario(bad)


def test_towed_car_moves_away_locked_and_switched_off_and_the_guard_alerts_once():
    from chelian.services.safety.geo import distance_m
    from chelian.services.safety.movement import MovementGuard
    from chelian.sim.behaviours import Towed
    from tests.services.safety.helpers import row

    car = SimVehicle(COMBUSTION, GRID, seed=8)
    towed = Towed(after_s=5)
    car.behaviours.append(towed)
    samples = run(car, 1200)
    assert towed.happened and towed.dropped
    start, end = samples[0], samples[-1]
    assert all(s[DRIVER_LOCK] and s["Vehicle.LowVoltageSystemState"] == "OFF" for s in samples)
    assert all(s["Vehicle.Speed"] == 0.0 for s in samples), "on the flatbed the wheels stand still"
    assert end["Vehicle.TraveledDistance"] == start["Vehicle.TraveledDistance"]
    assert max(distance_m(start[LAT], start[LON], s[LAT], s[LON]) for s in samples) > 200
    assert len({(s[LAT], s[LON]) for s in samples[-60:]}) == 1, "dropped somewhere, standing"
    assert "trip_started" not in [kind for kind, _ in car.drain_events()], "nobody drove it"
    guard = MovementGuard()
    alerts = [m for i, s in enumerate(samples) if (m := guard.feed(row(1, i, 1_000_000 + i * 1000, s)))]
    assert len(alerts) == 1
