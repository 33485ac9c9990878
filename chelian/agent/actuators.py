"""What a car can be asked to do: the seam between command handling and the vehicle.

The agent's command executor (signature checks, rights, safety rules) talks to the car only
through this protocol. A real car implements it over CAN (or a vendor SDK); the simulator
implements it on its simulated body. Each method returns quickly; a method that cannot act
raises `ActuationError` with a reason that ends up in the command's ack.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

ACTIONS: Final = ("lock", "unlock", "honk_flash", "immobilise", "mobilise", "clear_dtcs")
"""The commands a car can be wired for (a hook or a CAN action); the others the agent answers itself."""


class ActuationError(Exception):
    """The car could not do what was asked (reason is shown to the user)."""


class Actuators(Protocol):
    def lock(self) -> None: ...

    def unlock(self) -> None: ...

    def honk_flash(self, seconds: float = 3.0) -> None: ...

    def set_immobilised(self, immobilised: bool) -> None: ...

    def clear_dtcs(self) -> None:
        """Clear stored trouble codes (the next DTCList the car reports shows the result)."""
        ...

    def speed_kmh(self) -> float:
        """Current speed; the immobiliser only engages at (near) zero."""
        ...

    def location(self) -> dict[str, Any]:
        """{"lat", "lon", "heading", "speed", "ts"}: for `locate` acks."""
        ...
