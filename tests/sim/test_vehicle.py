"""The simulated car: valid, plausible, deterministic signals (no broker, no database)."""

from __future__ import annotations

import math

import pytest

from chelian.signals import Catalog
from chelian.sim.grid import StreetGrid
from chelian.sim.models import MODELS, model_for_vin, sim_car
from chelian.sim.roads import bearing_deg
from chelian.sim.vehicle import SimVehicle
from chelian.vin import normalise_vin

CATALOG = Catalog.builtin()
GRID = StreetGrid.generate(42.2808, -83.7430, seed=11)
ELECTRIC = next(m for m in MODELS if m.powertrain == "ELECTRIC")
COMBUSTION = next(m for m in MODELS if m.powertrain == "COMBUSTION")
ENERGY_SIGNAL = {
    "ELECTRIC": "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    "COMBUSTION": "Vehicle.Powertrain.FuelSystem.AbsoluteLevel",
}


def drive(car: SimVehicle, seconds: float, dt_s: float = 1.0) -> list[tuple[str, dict]]:
    """(phase after the step, signals) for every step."""
    samples = []
    for _ in range(round(seconds / dt_s)):
        signals = car.step(dt_s)
        samples.append((car.phase, signals))
    return samples


def local(signals: dict) -> tuple[float, float]:
    return GRID.projection.to_local(signals["Vehicle.CurrentLocation.Latitude"],
                                    signals["Vehicle.CurrentLocation.Longitude"])


def distance_to_grid(point: tuple[float, float]) -> float:
    """Metres from `point` to the nearest street segment of GRID."""
    best = math.inf
    for a in GRID.nodes():
        for b in GRID.neighbours(a):
            (ax, ay), (bx, by) = GRID.position(a), GRID.position(b)
            dx, dy = bx - ax, by - ay
            t = max(0.0, min(1.0, ((point[0] - ax) * dx + (point[1] - ay) * dy) / (dx * dx + dy * dy)))
            best = min(best, math.hypot(point[0] - ax - t * dx, point[1] - ay - t * dy))
    return best


@pytest.mark.parametrize("model", MODELS, ids=lambda m: f"{m.make}-{m.model}")
@pytest.mark.parametrize(("dt_s", "seconds"), [(0.1, 600), (1.0, 1800), (5.0, 3600)])
def test_every_signal_is_valid_for_the_catalog(model, dt_s, seconds):
    car = SimVehicle(model, GRID, seed=3)
    phases = set()
    for phase, signals in drive(car, seconds, dt_s):
        phases.add(phase)
        for path, value in signals.items():
            assert CATALOG.check(path, value) == value, path
    assert {"parked", "driving"} <= phases


def test_snapshot_covers_the_promised_signals():
    signals = SimVehicle(COMBUSTION, GRID, seed=1).step(1.0)
    expected = {"Vehicle.Speed", "Vehicle.IsMoving", "Vehicle.TraveledDistance",
                "Vehicle.LowVoltageSystemState",
                "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude",
                "Vehicle.CurrentLocation.Heading", "Vehicle.LowVoltageBattery.CurrentVoltage",
                "Vehicle.Exterior.AirTemperature", "Vehicle.Powertrain.FuelSystem.RelativeLevel",
                "Vehicle.Cabin.Door.Row2.PassengerSide.IsLocked", "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen",
                "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure"}
    assert expected <= signals.keys()
    ev = SimVehicle(ELECTRIC, GRID, seed=1).step(1.0)
    assert "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current" in ev
    assert "Vehicle.Powertrain.FuelSystem.RelativeLevel" not in ev


def test_odometer_never_goes_back_and_counts_the_trip():
    car = SimVehicle(COMBUSTION, GRID, seed=5)
    samples = drive(car, 3600)
    odometer = [s["Vehicle.TraveledDistance"] for _, s in samples]
    assert all(b >= a for a, b in zip(odometer, odometer[1:], strict=False))
    assert odometer[-1] - odometer[0] > 3000  # an hour of town trips covers kilometres
    speeds_ms = [s["Vehicle.Speed"] / 3.6 for _, s in samples]
    assert odometer[-1] - odometer[0] == pytest.approx(sum(speeds_ms), rel=0.05)


@pytest.mark.parametrize("model", [COMBUSTION, ELECTRIC], ids=lambda m: m.powertrain)
def test_energy_only_decreases_while_driving(model):
    car = SimVehicle(model, GRID, seed=8)
    path = ENERGY_SIGNAL[model.powertrain]
    samples = drive(car, 3600)
    driving = [s[path] for phase, s in samples if phase == "driving"]
    assert len(driving) > 600
    assert all(b <= a for a, b in zip(driving, driving[1:], strict=False))
    assert driving[-1] < driving[0]


def test_position_follows_the_streets_and_heading_follows_the_road():
    car = SimVehicle(COMBUSTION, GRID, seed=9)
    samples = drive(car, 1800)
    moving = [s for phase, s in samples if s["Vehicle.IsMoving"]]
    assert len(moving) > 300
    for signals in moving[::10]:
        assert distance_to_grid(local(signals)) < 1.0
    headings = {round(bearing_deg(GRID.position(a), GRID.position(b)), 1) % 360
                for a in GRID.nodes() for b in GRID.neighbours(a)}
    assert {s["Vehicle.CurrentLocation.Heading"] for s in moving} <= headings
    visited = {(round(local(s)[0], -1), round(local(s)[1], -1)) for s in moving}
    assert len(visited) > 100  # it goes places, not back and forth on one block


def test_speed_respects_the_limits_and_stops_happen():
    car = SimVehicle(COMBUSTION, GRID, seed=2)
    speeds = [s["Vehicle.Speed"] for phase, s in drive(car, 3600, 0.5) if phase == "driving"]
    assert max(speeds) <= 60 * 1.05 + 0.1
    assert max(speeds) > 35
    # Stopping at intersections: the car is at a standstill mid-trip, then moves again.
    assert any(a > 0 and b == 0 for a, b in zip(speeds, speeds[1:], strict=False))


def test_phases_set_ignition_doors_and_locks_plausibly():
    car = SimVehicle(ELECTRIC, GRID, seed=4)
    seen_open = False
    for phase, s in drive(car, 3600):
        doors_open = [v for k, v in s.items() if k.endswith(".IsOpen")]
        locked = {v for k, v in s.items() if k.startswith("Vehicle.Cabin.Door") and k.endswith(".IsLocked")}
        seen_open |= any(doors_open)
        if s["Vehicle.IsMoving"]:
            assert s["Vehicle.LowVoltageSystemState"] == "ON" and not any(doors_open) and locked == {True}
        if phase == "parked":
            assert s["Vehicle.LowVoltageSystemState"] == "OFF" and locked == {True} and not any(doors_open)
        if any(doors_open):
            assert locked == {False}
        volts = s["Vehicle.LowVoltageBattery.CurrentVoltage"]
        assert 11.5 < volts < 14.8
    assert seen_open


def test_trips_are_reported_as_events():
    car = SimVehicle(COMBUSTION, GRID, seed=6)
    events = []
    for _ in range(3600):
        car.step(1.0)
        events += car.drain_events()
    kinds = [k for k, _ in events]
    assert kinds.count("trip_started") >= 3
    assert all(kinds[i] == "trip_started" for i in range(0, len(kinds), 2))
    ended = [d for k, d in events if k == "trip_ended"]
    assert all(1500 <= d["distance_m"] <= 8000 and d["duration_s"] > 0 for d in ended)
    assert car.drain_events() == []


def test_a_low_electric_car_charges_while_parked():
    car = SimVehicle(ELECTRIC, GRID, seed=7)
    car.energy.level = ELECTRIC.capacity * 0.10
    soc_path = ENERGY_SIGNAL["ELECTRIC"]
    first = car.step(1.0)
    assert car.phase == "parked" and first["Vehicle.Powertrain.TractionBattery.Charging.IsCharging"] is True
    assert car.drain_events()[0][0] == "charging_started"
    later = drive(car, 600)
    assert all(phase == "parked" for phase, _ in later)  # it stays plugged in until the target
    assert later[-1][1][soc_path] > first[soc_path] + 10


def test_a_low_combustion_car_refuels_when_parked():
    car = SimVehicle(COMBUSTION, GRID, seed=7)
    car.energy.level = COMBUSTION.capacity * 0.05
    signals = car.step(1.0)
    assert signals["Vehicle.Powertrain.FuelSystem.RelativeLevel"] == 100
    assert car.drain_events()[0][0] == "refueled"


def test_same_seed_same_drive_and_another_seed_another():
    def run(seed: int) -> list[dict]:
        return [s for _, s in drive(SimVehicle(ELECTRIC, GRID, seed=seed), 900)]

    assert run(21) == run(21)
    assert run(21) != run(22)
    assert StreetGrid.generate(1.0, 2.0, seed=3) == StreetGrid.generate(1.0, 2.0, seed=3)


def test_grid_is_a_connected_two_way_street_network():
    nodes = list(GRID.nodes())
    for a in nodes:
        for b in GRID.neighbours(a):
            assert a in GRID.neighbours(b)
            assert GRID.speed_limit_ms(a, b) == GRID.speed_limit_ms(b, a)
    reached, frontier = {nodes[0]}, [nodes[0]]
    while frontier:
        for n in GRID.neighbours(frontier.pop()):
            if n not in reached:
                reached.add(n)
                frontier.append(n)
    assert reached == set(nodes)
    lat, lon = GRID.projection.to_latlon(*GRID.position(GRID.centre_node()))
    assert (lat, lon) == pytest.approx((42.2808, -83.7430), abs=0.002)


def test_simulated_vins_are_valid_stable_and_name_their_model():
    cars = [sim_car(f"owner{o}@example.com", i) for o in range(20) for i in range(12)]
    for car in cars:
        assert normalise_vin(car.vin) == car.vin
        assert car.vin[0] in "12345"  # North American: the check digit applies
        assert model_for_vin(car.vin) == car.model
        assert car.model.first_year <= car.year <= car.model.last_year
    assert len({c.vin for c in cars}) == len(cars)
    assert sim_car("Ana@Example.com", 2) == sim_car("ana@example.com", 2)


def test_one_owner_can_have_as_many_simulated_cars_as_sim_allows_all_with_their_own_vin():
    from chelian.services.fleet.sim_fleet import MAX_SIM_CARS

    vins = [sim_car("bench@example.com", i).vin for i in range(MAX_SIM_CARS)]
    assert len(set(vins)) == MAX_SIM_CARS
