"""Where an agent's signals come from: the `SignalSource` seam, and building one from config.

The agent is the same program in a real car and in the simulator; only this seam differs.
A source answers one question, "what are the current values?" (`snapshot()`, VSS path ->
value), because the agent decides on its own schedule what to send: a CAN bus delivers
thousands of frames a second, a simulated car advances in fixed steps, and neither should
dictate the publishing rate. Sources that also notice discrete happenings (a trip ended, a
refuel) offer `drain_events()`; CAN sources do not, and need not.

`ReadOnlyActuators` lets a car without actuator wiring still answer `locate` (from its own
signals) and refuse the rest with a clear reason, rather than ignoring commands.

Example:
    source = open_source(config.source)      # a started CanSignalSource for kind = "can"
    source.snapshot()                        # {"Vehicle.Speed": 51.2, ...}
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from chelian.agent.actuators import ActuationError

LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
HEADING, SPEED = "Vehicle.CurrentLocation.Heading", "Vehicle.Speed"


class SignalSource(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """The latest value of every signal the source knows (a copy the caller may keep)."""
        ...


@runtime_checkable
class EventSource(Protocol):
    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        """(type, data) of what happened since the last call, oldest first."""
        ...


class ReadOnlyActuators:
    """A car the agent can observe but not move: `locate` works, actions are refused."""

    def __init__(self, source: SignalSource, reason: str = "this car has no actuator interface") -> None:
        self.source, self.reason = source, reason

    def lock(self) -> None:
        raise ActuationError(self.reason)

    def unlock(self) -> None:
        raise ActuationError(self.reason)

    def honk_flash(self, seconds: float = 3.0) -> None:
        raise ActuationError(self.reason)

    def set_immobilised(self, immobilised: bool) -> None:
        raise ActuationError(self.reason)

    def clear_dtcs(self) -> None:
        raise ActuationError(self.reason)

    def speed_kmh(self) -> float:
        return float(self.source.snapshot().get(SPEED, 0.0))

    def location(self) -> dict[str, Any]:
        snap = self.source.snapshot()
        if LAT not in snap or LON not in snap:
            raise ActuationError("no position known yet")
        return {"lat": snap[LAT], "lon": snap[LON], "heading": snap.get(HEADING), "speed": snap.get(SPEED),
                "ts": time.time_ns() // 1_000_000}


def open_can_source(*, interface: str | None, channel: str | None, mapping: str, dbc: str | None = None,
                    log_file: Path | None = None, realtime: bool = True) -> Any:
    """A started `CanSignalSource`: a live bus, or a recorded log replayed (`log_file`).

    `mapping` is a built-in mapping name or a YAML file; `dbc` a file or an opendbc name
    (default: the mapping's own `dbc:`). Imported here so an agent without CAN needs no
    python-can.
    """
    from chelian.agent.can import CanDecoder, CanSignalSource, opendbc_dbc

    dbc_path: Path | None = None
    if dbc is not None:
        dbc_path = Path(dbc) if Path(dbc).is_file() else opendbc_dbc(dbc)
    decoder = CanDecoder(dbc_path, mapping)
    if log_file is not None:
        return CanSignalSource(decoder, log_file=log_file, realtime=realtime).start()
    return CanSignalSource(decoder, interface=interface or "socketcan", channel=channel).start()
