"""A crash: the car hits something while driving and is stranded with its airbags out.

What a connected car reports in the second of a collision, and what an eCall/crash
notification pipeline keys on: a deceleration far beyond braking (tens of m/s^2; a 50 km/h
impact stops the car in ~0.15 s), speed collapsing to zero, airbags deployed, hazard lights
on, doors unlocked for rescuers, and the airbag control unit's deployment DTC (B0001,
driver frontal stage 1). Then nothing moves again.

Example:
    car.behaviours.append(Crash(after_s=120))   # crashes at the first chance after 2 minutes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chelian.sim.vehicle import SimVehicle

IMPACT_S = 0.15
MIN_SPEED_MS = 20 / 3.6
"""Waits until the car drives at least this fast, so the crash is one worth reporting."""
AIRBAG_DTC = "B0001"


@dataclass
class Crash:
    after_s: float = 60.0
    happened: bool = False
    _elapsed: float = 0.0

    def step(self, car: SimVehicle, dt_s: float) -> None:
        self._elapsed += dt_s
        if self.happened:
            car.mover.accel_ms2 = 0.0  # the impact shows in exactly one sample
            return
        if self._elapsed < self.after_s or car.phase != "driving" or car.mover.speed_ms < MIN_SPEED_MS:
            return
        speed_kmh = car.mover.speed_ms * 3.6
        car.mover.stop_dead(IMPACT_S)
        car.phase = "stranded"
        car.open_doors = frozenset()
        controls = car.controls
        controls.airbags_deployed = controls.hazard = controls.stranded = True
        controls.lock_override = False
        controls.raise_dtc(AIRBAG_DTC)
        self.happened = True
        car._event("crash_detected", speed_kmh=round(speed_kmh, 1), decel_ms2=round(car.mover.accel_ms2, 1))
