"""What the outside world does to a simulated car: remote commands and scripted behaviours.

The trip phases in `vehicle.py` model what the driver does (lock on leaving, unlock on
boarding). Remote commands and scenarios act on top of that: a remote lock holds until the
driver next does something to the locks, honking and hazard lights run for a while, an
immobilised car cannot be started, a crashed or broken-down car is stranded where it stands.
Keeping this state apart from the phases keeps `vehicle.py` about driving, and gives the
agent's actuators and the behaviours one small surface to act on.

Example:
    controls = Controls()
    controls.honk_flash(3.0)
    controls.signals()["Vehicle.Body.Horn.IsActive"]   # True, for the next 3 s of `step`
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AIRBAGS = ("Vehicle.Cabin.Seat.Row1.DriverSide.Airbag.IsDeployed",
           "Vehicle.Cabin.Seat.Row1.PassengerSide.Airbag.IsDeployed")


@dataclass
class Controls:
    lock_override: bool | None = None
    """Locked (True) or unlocked (False) by remote command; None: as the driver left it."""
    horn_s: float = 0.0
    flash_s: float = 0.0
    hazard: bool = False
    """Hazard lights switched on for good (a crash, a breakdown)."""
    immobilised: bool = False
    airbags_deployed: bool = False
    stranded: bool = False
    """The car cannot drive any more (crashed, broken down): it stays where it stopped."""
    dtcs: list[str] = field(default_factory=list)
    """Active diagnostic trouble codes, oldest first."""

    def honk_flash(self, seconds: float) -> None:
        self.horn_s = self.flash_s = max(self.horn_s, float(seconds))

    def raise_dtc(self, code: str) -> None:
        if code not in self.dtcs:
            self.dtcs.append(code)

    def clear_dtc(self, code: str) -> None:
        if code in self.dtcs:
            self.dtcs.remove(code)

    def step(self, dt_s: float) -> None:
        self.horn_s = max(0.0, self.horn_s - dt_s)
        self.flash_s = max(0.0, self.flash_s - dt_s)

    def signals(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Vehicle.Body.Horn.IsActive": self.horn_s > 0,
            "Vehicle.Body.Lights.Hazard.IsSignaling": self.hazard or self.flash_s > 0,
            "Vehicle.Diagnostics.DTCList": list(self.dtcs),
            "Vehicle.Diagnostics.DTCCount": min(255, len(self.dtcs)),
        }
        for airbag in AIRBAGS:
            out[airbag] = self.airbags_deployed
        return out
