"""Occasional, ordinary fault codes: every real fleet has a few cars with a DTC on.

Each car now and then raises one of a handful of common codes (catalyst efficiency, lean
mixture, a wheel speed sensor, a lost CAN node) which clears again after a while, the way
an intermittent fault does. Rare by default (about once per 5 hours of simulated time per
car), so a fleet of hundreds shows a handful at any moment.

Example:
    car.behaviours.append(RandomFaults(rng=random.Random(7)))
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chelian.sim.vehicle import SimVehicle

COMMON = {"COMBUSTION": ("P0420", "P0171", "C0035", "U0100"), "ELECTRIC": ("C0035", "U0100", "B1342")}
"""Per powertrain: the codes a car may raise."""
LASTS_S = (600.0, 3600.0)


@dataclass
class RandomFaults:
    rng: random.Random
    per_hour: float = 0.2
    active: dict[str, float] = field(default_factory=dict)
    """code -> seconds until it clears."""

    def step(self, car: SimVehicle, dt_s: float) -> None:
        if car.controls.stranded:
            return
        for code in list(self.active):
            self.active[code] -= dt_s
            if self.active[code] <= 0:
                del self.active[code]
                car.controls.clear_dtc(code)
        if self.rng.random() < self.per_hour * dt_s / 3600:
            code = self.rng.choice(COMMON[car.model.powertrain])
            if code not in car.controls.dtcs:
                self.active[code] = self.rng.uniform(*LASTS_S)
                car.controls.raise_dtc(code)
