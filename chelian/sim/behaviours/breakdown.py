"""A breakdown: fault codes come up, the driver pulls over, hazard lights, stranded.

Unlike a crash the car slows down normally (it is braked, not stopped by an obstacle), so
its deceleration stays within braking, and the DTCs arrive *before* the stop: that order is
what a breakdown assistance service sees and can act on. Combustion cars misfire (P0300
random misfire, P0301 cylinder 1); electric cars report an isolation fault in the traction
battery (P0AA6) and limp to a stop.

Example:
    car.behaviours.append(Breakdown(after_s=300))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chelian.sim.vehicle import SimVehicle

DTCS = {"COMBUSTION": ("P0300", "P0301"), "ELECTRIC": ("P0AA6",)}


@dataclass
class Breakdown:
    after_s: float = 60.0
    happened: bool = False
    _elapsed: float = 0.0

    def step(self, car: SimVehicle, dt_s: float) -> None:
        self._elapsed += dt_s
        if car.phase == "stranded" or self._elapsed < self.after_s:
            return
        if not self.happened:
            if car.phase != "driving" or car.mover.speed_ms <= 0:
                return  # it breaks down on the road, not in a car park
            for code in DTCS[car.model.powertrain]:
                car.controls.raise_dtc(code)
            car.controls.hazard = True
            car.mover.halt()
            self.happened = True
            car._event("breakdown", dtcs=list(car.controls.dtcs))
        if car.mover.speed_ms <= 0:  # pulled over: it stays there
            car.mover.parked = True
            car.phase = "stranded"
            car.controls.stranded = True
