"""One simulated car: pure state that `step(dt_s)` advances and turns into VSS signals.

No clock, no sockets, no threads: the same seed and the same sequence of `step` calls give
the same signals, which is what makes the simulator testable and lets the later agent-based
simulator reuse it on other road networks.

A car cycles through trip phases (parked, boarding, starting, driving, arriving,
alighting) described by the `PHASES` table: each phase fixes the ignition, whether a door
stands open and whether the car is locked, and says how long it lasts. Driving ends when the
trip distance is covered and the car has stopped at an intersection.

Example:
    grid = StreetGrid.generate(42.2808, -83.7430, seed=1)
    car = SimVehicle(MODELS[0], grid, seed=1)
    car.step(1.0)["Vehicle.Speed"]   # 0.0: it starts parked
    car.drain_events()               # [("trip_started", {...})] once it sets off
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from chelian.sim.body import LOW_ENERGY, Cabin, EnergyStore, LowVoltageBattery, Tyres, Weather
from chelian.sim.controls import Controls
from chelian.sim.models import CarModel
from chelian.sim.motion import Mover
from chelian.sim.roads import RoadNetwork, distance_m

DOORS = tuple(f"Vehicle.Cabin.Door.Row{r}.{s}" for r in (1, 2) for s in ("DriverSide", "PassengerSide"))
DRIVER_DOOR = DOORS[0]
TRIP_M = (1500.0, 6000.0)
ROUTE_TRIES = 8
PASSENGER_CHANCE = 0.3
"""Chance that a passenger door opens too when people get in or out."""


@dataclass(frozen=True, slots=True)
class Phase:
    min_s: float
    max_s: float
    next: str
    ignition: str
    """`Vehicle.LowVoltageSystemState` during the phase."""
    doors_open: bool
    locked: bool


PHASES: dict[str, Phase] = {
    "parked": Phase(30, 120, "boarding", "OFF", doors_open=False, locked=True),
    "boarding": Phase(2, 6, "starting", "OFF", doors_open=True, locked=False),
    "starting": Phase(2, 4, "driving", "ON", doors_open=False, locked=False),
    # Driving: the doors lock at speed, and the phase ends on arrival, not after a time.
    "driving": Phase(0, 0, "arriving", "ON", doors_open=False, locked=True),
    "arriving": Phase(1, 3, "alighting", "OFF", doors_open=False, locked=False),
    "alighting": Phase(2, 6, "parked", "OFF", doors_open=True, locked=False),
    # After a crash or a breakdown: where it stopped, electrics on, for good.
    "stranded": Phase(0, 0, "stranded", "ACC", doors_open=False, locked=False),
    # Stolen on a tow truck: locked, switched off, and moving; parked again where it is dropped.
    "towed": Phase(0, 0, "parked", "OFF", doors_open=False, locked=True),
}
MOVING_PHASES = frozenset({"driving", "towed"})


class Behaviour(Protocol):
    """Something scripted that happens to a car (a crash, a breakdown); see `sim/behaviours/`."""

    def step(self, car: SimVehicle, dt_s: float) -> None:
        """Called after every physics step; may change the car's state."""
        ...


class SimVehicle:
    """A car on a road network; `step(dt_s)` returns a complete snapshot of its VSS signals."""

    def __init__(self, model: CarModel, network: RoadNetwork, seed: int, *,
                 start_node: int | None = None, clock_s: float = 12 * 3600) -> None:
        self.model = model
        self.rng = rng = random.Random(f"vehicle:{seed}")
        self.network = network
        self.mover = Mover(network, rng.choice(network.nodes()) if start_node is None else start_node, rng)
        self.clock_s = clock_s
        self.odometer_m = rng.uniform(5_000, 120_000) * 1000
        self.trip_m = 0.0
        self.trip_s = 0.0
        self.trip_target_m = 0.0
        self.towed_m = 0.0
        """How far a tow truck has carried the car (its odometer does not count it)."""
        self.weather = Weather(base_c=rng.uniform(2, 26))
        outside = self.weather.step(0.0, clock_s, rng)
        self.cabin = Cabin(temperature_c=outside)
        leaks = [0.0] * 4
        if rng.random() < 0.1:
            leaks[rng.randrange(4)] = rng.uniform(2, 6)
        self.tyres = Tyres([rng.uniform(230, 250) for _ in range(4)], reference_c=outside,
                           temperature_c=outside, leak_kpa_per_h=leaks)
        resting = rng.uniform(12.4, 12.7)
        self.battery = LowVoltageBattery(resting_v=resting, voltage=resting)
        self.energy = EnergyStore(model, model.capacity * rng.uniform(0.35, 0.95))
        self.phase = "parked"
        self.phase_left_s = rng.uniform(1, 20)  # cars of a fleet set off at different times
        self.open_doors: frozenset[str] = frozenset()
        self._outside_c = outside
        self._events: list[tuple[str, dict[str, Any]]] = []
        self.controls = Controls()
        self.behaviours: list[Behaviour] = []

    # --- time -------------------------------------------------------------------------------

    def step(self, dt_s: float) -> dict[str, Any]:
        """Advance `dt_s` seconds of simulated time and return every signal's current value."""
        if dt_s < 0:
            raise ValueError("time only moves forward")
        self.clock_s += dt_s
        phase = PHASES[self.phase]
        ignition_on = phase.ignition == "ON"
        moved = self.mover.step(dt_s) if self.phase in MOVING_PHASES else 0.0
        if self.phase == "towed":  # on a flatbed: the wheels stand still, only the position moves
            self.towed_m, moved = self.towed_m + moved, 0.0
        self.odometer_m += moved
        self.trip_m += moved
        self.trip_s += dt_s if self.phase == "driving" else 0.0
        self.energy.consume(moved, dt_s, ignition_on)
        self._outside_c = self.weather.step(dt_s, self.clock_s, self.rng)
        self.cabin.step(dt_s, self._outside_c, ignition_on)
        self.tyres.step(dt_s, self._outside_c, rolling=self.mover.speed_ms > 0)
        self.battery.step(dt_s, ignition_on, self.rng)
        self._replenish(dt_s)
        self.controls.step(dt_s)
        self._advance_phase(dt_s)
        for behaviour in self.behaviours:
            behaviour.step(self, dt_s)
        return self.signals()

    def _advance_phase(self, dt_s: float) -> None:
        if self.phase == "stranded":
            return
        if self.phase in MOVING_PHASES:
            covered = self.towed_m if self.phase == "towed" else self.trip_m
            if covered >= self.trip_target_m and not self.mover.finishing:
                self.mover.finish()
            if self.mover.parked:
                if self.phase == "driving":
                    self._event("trip_ended", distance_m=round(self.trip_m), duration_s=round(self.trip_s))
                self._enter(PHASES[self.phase].next)
            return
        self.phase_left_s -= dt_s
        if self.phase_left_s <= 0 and not self.energy.charging:
            upcoming = PHASES[self.phase].next
            if upcoming == "driving" and self.controls.immobilised:
                upcoming = "alighting"  # it will not start: the driver gives up and gets out
            self._enter(upcoming)

    def tow(self) -> None:
        """Be carried away on a tow truck (a theft): locked, ignition off, wheels still (speed 0,
        odometer unchanged), only the position moves along the roads; then dropped, parked."""
        self._enter("towed")

    def _enter(self, name: str) -> None:
        phase = PHASES[name]
        self.phase = name
        self.controls.lock_override = None  # the driver handles the locks from here
        self.phase_left_s = self.rng.uniform(phase.min_s, phase.max_s)
        doors = {DRIVER_DOOR} if phase.doors_open else set()
        if phase.doors_open and self.rng.random() < PASSENGER_CHANCE:
            doors.add(self.rng.choice(DOORS[1:]))
        self.open_doors = frozenset(doors)
        if name in MOVING_PHASES:
            self.trip_m, self.trip_s, self.towed_m = 0.0, 0.0, 0.0
            self.trip_target_m = self.rng.uniform(*TRIP_M)
            route = self._plan_route()
            if route is not None:  # park where the route ends, give or take a crossing
                self.trip_target_m = max(1.0, self.network.route_length_m(route) - 1.0)  # type: ignore[attr-defined]
            self.mover.depart(route)
            if name == "driving":
                self._event("trip_started", odometer_m=int(self.odometer_m))

    def _plan_route(self) -> list[int] | None:
        """On a network that routes (OSM roads): the shortest way to a random destination a
        town trip away. The street grid does not route; its drivers wander."""
        route_fn = getattr(self.network, "route", None)
        if route_fn is None:
            return None
        start, nodes = self.mover.next_node, self.network.nodes()
        fallback = None
        for _ in range(ROUTE_TRIES):
            dest = self.rng.choice(nodes)
            straight = distance_m(self.network.position(start), self.network.position(dest))
            if dest == start or (fallback is not None and not TRIP_M[0] / 2 <= straight <= TRIP_M[1]):
                continue
            route = route_fn(start, dest)
            if route is not None and len(route) >= 2:
                if TRIP_M[0] / 2 <= straight <= TRIP_M[1]:
                    return route
                fallback = route  # a small map may have no destination that far
        return fallback

    def _replenish(self, dt_s: float) -> None:
        """Parked cars low on energy refuel at once, or charge until the target."""
        if self.phase != "parked":
            return
        if self.energy.fraction < LOW_ENERGY and not self.energy.charging:
            if self.energy.electric:
                self.energy.charging = True
                self._event("charging_started", state_of_charge=round(self.energy.fraction * 100, 1))
            else:
                self._event("refueled", litres=round(self.energy.replenish(dt_s), 1))
        if self.energy.charging and self.energy.replenish(dt_s) <= 0:
            self.energy.charging = False
            self._event("charging_stopped", state_of_charge=round(self.energy.fraction * 100, 1))

    def _event(self, kind: str, **data: Any) -> None:
        self._events.append((kind, data))

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        """Events (type, data) since the last call: trips, refuelling, charging."""
        events, self._events = self._events, []
        return events

    # --- signals ----------------------------------------------------------------------------

    def signals(self) -> dict[str, Any]:
        phase = PHASES[self.phase]
        on_wheels = self.phase != "towed"
        speed_kmh = round(self.mover.speed_ms * 3.6, 1) if on_wheels else 0.0
        lat, lon = self.mover.latlon
        running = phase.ignition == "ON"
        out: dict[str, Any] = {
            "Vehicle.Speed": speed_kmh,
            "Vehicle.IsMoving": speed_kmh > 0,
            "Vehicle.TraveledDistance": int(self.odometer_m),
            "Vehicle.TripMeterReading": int(self.trip_m),
            "Vehicle.CurrentLocation.Latitude": round(lat, 7),
            "Vehicle.CurrentLocation.Longitude": round(lon, 7),
            "Vehicle.CurrentLocation.Heading": round(self.mover.heading_deg, 1) % 360.0,
            "Vehicle.Acceleration.Longitudinal": round(self.mover.accel_ms2, 2) if on_wheels else 0.0,
            "Vehicle.LowVoltageSystemState": phase.ignition,
            "Vehicle.LowVoltageBattery.CurrentVoltage": round(self.battery.voltage, 2),
            "Vehicle.Powertrain.Type": self.model.powertrain,
            "Vehicle.Chassis.ParkingBrake.IsEngaged": self.phase != "driving",
            "Vehicle.Exterior.AirTemperature": round(self._outside_c, 1),
            "Vehicle.Cabin.HVAC.AmbientAirTemperature": round(self.cabin.temperature_c, 1),
        }
        locked = phase.locked if self.controls.lock_override is None else self.controls.lock_override
        for door in DOORS:
            out[f"{door}.IsOpen"] = door in self.open_doors
            out[f"{door}.IsLocked"] = locked
        if not self.energy.electric:
            out["Vehicle.Powertrain.CombustionEngine.IsRunning"] = running
            out["Vehicle.Powertrain.CombustionEngine.Speed"] = float(engine_rpm(speed_kmh) if running else 0)
        out.update(self.tyres.signals())
        out.update(self.energy.signals())
        out.update(self.controls.signals())
        return out


GEARS_KMH = (20, 35, 50, 70, 95)
"""Upshift points for a plausible rev counter: 800 rpm idle, 1200-2600 rpm in gear."""


def engine_rpm(speed_kmh: float) -> int:
    if speed_kmh <= 0:
        return 800
    low = max((g for g in (0, *GEARS_KMH) if g <= speed_kmh), default=0)
    high = next((g for g in GEARS_KMH if g > speed_kmh), low + 40)
    return round(1200 + 1400 * (speed_kmh - low) / (high - low))
