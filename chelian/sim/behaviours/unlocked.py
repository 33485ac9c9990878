"""A car left unlocked: after its next trip the driver walks away without locking.

The classic "did I lock the car?" case a connected-car app exists for: the car is parked,
ignition off, doors closed but unlocked, for a long while (`for_s`). A remote lock command
fixes it (the lock then holds, as on a real car), and so does the driver's return.

Example:
    car.behaviours.append(LeftUnlocked(after_s=0, for_s=3600))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chelian.sim.vehicle import SimVehicle


@dataclass
class LeftUnlocked:
    after_s: float = 60.0
    for_s: float = 3600.0
    happened: bool = False
    _elapsed: float = 0.0
    _was_parked: bool = True

    def step(self, car: SimVehicle, dt_s: float) -> None:
        self._elapsed += dt_s
        parked = car.phase == "parked"
        arrived = parked and not self._was_parked  # a trip has just ended
        self._was_parked = parked
        if self.happened or not arrived or self._elapsed < self.after_s:
            return
        car.controls.lock_override = False
        car.phase_left_s = self.for_s
        self.happened = True
