"""An in-memory car body for command tests: records what it was asked, fails on request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chelian.agent.actuators import ActuationError


@dataclass
class FakeActuators:
    speed: float = 0.0
    locked: bool = False
    immobilised: bool = False
    fail_with: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _do(self, name: str, arg: Any = None) -> None:
        if self.fail_with is not None:
            raise ActuationError(self.fail_with)
        self.calls.append((name, arg))

    def lock(self) -> None:
        self._do("lock")
        self.locked = True

    def unlock(self) -> None:
        self._do("unlock")
        self.locked = False

    def honk_flash(self, seconds: float = 3.0) -> None:
        self._do("honk_flash", seconds)

    def set_immobilised(self, immobilised: bool) -> None:
        self._do("set_immobilised", immobilised)
        self.immobilised = immobilised

    def clear_dtcs(self) -> None:
        self._do("clear_dtcs")

    def speed_kmh(self) -> float:
        return self.speed

    def location(self) -> dict[str, Any]:
        self._do("location")
        return {"lat": 42.5063, "lon": 1.5218, "heading": 90.0, "speed": self.speed, "ts": 1_764_083_523_123}
