"""A theft by tow truck: the parked, locked car moves away with its ignition off.

What the unauthorised-movement alarm keys on (docs/safety.md): the driver door stays locked,
`Vehicle.LowVoltageSystemState` stays OFF, the wheels stand still on the flatbed
(`Vehicle.Speed` 0, odometer unchanged), and yet the position moves a town trip away. Only
the distance from the parking spot can tell. Where the truck drops it, the car stands
(`stay_s`) until its owner finds it. With a stolen report open, the platform's
`set_tracking` makes the car report every move.

Example:
    car.behaviours.append(Towed(after_s=30))   # the next time it stands parked after 30 s
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chelian.sim.vehicle import SimVehicle


@dataclass
class Towed:
    after_s: float = 60.0
    stay_s: float = 6 * 3600.0
    happened: bool = False
    dropped: bool = False
    _elapsed: float = 0.0

    def step(self, car: SimVehicle, dt_s: float) -> None:
        self._elapsed += dt_s
        if not self.happened:
            if self._elapsed >= self.after_s and car.phase == "parked":
                car.tow()
                self.happened = True
        elif not self.dropped and car.phase == "parked":
            car.phase_left_s = self.stay_s  # dropped off: nobody drives it away soon
            self.dropped = True
