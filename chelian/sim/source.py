"""A simulated car as the agent sees a real one: a signal source and a set of actuators.

The fleet simulator runs the real agent (`chelian.agent.runtime.Agent`) for every car; only
this module differs from a car on the road. `SimSignalSource` wraps the `SimVehicle`
physics (advanced by the fleet's clock with fixed steps, so runs stay deterministic) and
`SimActuators` act on the simulated body, so a remote lock, honk or immobilise really
changes the state the car then reports.

Example:
    source = SimSignalSource(SimVehicle(model, grid, seed=1))
    actuators = SimActuators(source)
    source.advance(1.0); actuators.lock()
    source.snapshot()["Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"]   # True
"""

from __future__ import annotations

import time
from typing import Any

from chelian.agent.actuators import ActuationError
from chelian.sim.vehicle import SimVehicle


class SimSignalSource:
    """`snapshot()` and `drain_events()` of a SimVehicle that `advance(dt_s)` moves on."""

    def __init__(self, vehicle: SimVehicle) -> None:
        self.vehicle = vehicle
        self._signals: dict[str, Any] | None = None

    def advance(self, dt_s: float) -> None:
        self._signals = self.vehicle.step(dt_s)

    def changed(self) -> None:
        """Something acted on the car between steps: the next snapshot is computed afresh."""
        self._signals = None

    def snapshot(self) -> dict[str, Any]:
        if self._signals is None:
            self._signals = self.vehicle.signals()
        return self._signals

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        return self.vehicle.drain_events()


class SimActuators:
    """The `chelian.agent.actuators.Actuators` of a simulated car."""

    def __init__(self, source: SimSignalSource) -> None:
        self.source = source
        self.car = source.vehicle

    def _done(self) -> None:
        self.source.changed()

    def lock(self) -> None:
        if self.car.open_doors:
            raise ActuationError("a door is open")
        self.car.controls.lock_override = True
        self._done()

    def unlock(self) -> None:
        self.car.controls.lock_override = False
        self._done()

    def honk_flash(self, seconds: float = 3.0) -> None:
        self.car.controls.honk_flash(seconds)
        self._done()

    def set_immobilised(self, immobilised: bool) -> None:
        if immobilised and self.speed_kmh() > 0:
            raise ActuationError("the car is moving")
        self.car.controls.immobilised = immobilised
        self._done()

    def clear_dtcs(self) -> None:
        for code in list(self.car.controls.dtcs):
            self.car.controls.clear_dtc(code)
        self._done()

    def speed_kmh(self) -> float:
        return round(self.car.mover.speed_ms * 3.6, 1)

    def location(self) -> dict[str, Any]:
        lat, lon = self.car.mover.latlon
        return {"lat": round(lat, 7), "lon": round(lon, 7), "heading": round(self.car.mover.heading_deg, 1),
                "speed": self.speed_kmh(), "ts": time.time_ns() // 1_000_000}
