"""High-rate location tracking: the car reports where it is every `interval_ms`, for a while.

The cloud asks for it with the signed `set_tracking` command (a stolen car, an owner who wants
to follow a car closely); `duration_s = 0` ends it. While it runs, every sampling tick that
falls due adds the TRACKED signals to the telemetry message whether or not they changed (the
deadband and per-signal rate limits of `publisher.py` do not apply to them), and the agent
samples at least once per interval.

It lapses by itself at `until_ms`: a car must not keep its modem busy at 1 Hz for ever because
the "stop" command was lost (the car was offline when the owner marked it recovered).

Due times sit on a fixed grid (`start + k * interval`). A tick counts as on time a little
before its slot (up to a quarter interval, and only when it is nearer the slot than the next
tick will be): so a 1 s interval sampled by a 1 Hz tick whose timing jitters by a few
milliseconds still sends every tick, a 10 Hz tick sends every tenth, and the average rate is
exactly one per interval. A car that was asleep (ticks far apart) restarts the
grid instead of catching up in a burst.

Example:
    tracking = Tracking()
    tracking.start(interval_ms=1000, duration_s=600, now_ms=t0)
    tracking.due(t0)            # True: the first fix goes out at once
    tracking.due(t0 + 400)      # False
    tracking.due(t0 + 990)      # True
    tracking.active(t0 + 601_000)   # False: lapsed
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Final

from chelian.agent.sources import HEADING, LAT, LON, SPEED

log = logging.getLogger("chelian.agent.tracking")

TRACKED: Final = (LAT, LON, HEADING, SPEED)
"""What high-rate tracking sends every interval: position, heading and speed."""
EARLY_FRACTION: Final = 0.25
"""A tick this fraction of an interval before its slot still counts as on time (jitter)."""

TRACKING_STARTED: Final = "tracking_started"
TRACKING_STOPPED: Final = "tracking_stopped"
TRACKING_LAPSED: Final = "tracking_lapsed"


@dataclass(frozen=True, slots=True)
class TrackingState:
    interval_ms: int
    until_ms: int

    def to_json(self) -> dict[str, int]:
        return {"interval_ms": self.interval_ms, "until_ms": self.until_ms}

    @classmethod
    def from_json(cls, obj: Any) -> TrackingState | None:
        if not isinstance(obj, dict):
            return None
        try:
            return cls(int(obj["interval_ms"]), int(obj["until_ms"]))
        except (KeyError, TypeError, ValueError):
            return None


class Tracking:
    """Shared between the command executor (which sets it) and the agent (which reads it)."""

    def __init__(self, state: TrackingState | None = None) -> None:
        self._lock = threading.Lock()
        self._state = state
        self._next_ms: int | None = None
        self._last_tick_ms: int | None = None

    @property
    def state(self) -> TrackingState | None:
        return self._state

    def start(self, interval_ms: int, duration_s: int, now_ms: int) -> TrackingState | None:
        """Track every `interval_ms` until `duration_s` from now; 0 s stops at once (returns None)."""
        with self._lock:
            if duration_s <= 0:
                if self._state is not None:
                    log.info("%s interval_ms=%d", TRACKING_STOPPED, self._state.interval_ms)
                self._state, self._next_ms = None, None
                return None
            self._state = TrackingState(interval_ms, now_ms + duration_s * 1000)
            self._next_ms = None  # the first fix at the new rate goes out at the next tick
            log.info("%s interval_ms=%d until_ms=%d", TRACKING_STARTED, interval_ms, self._state.until_ms)
            return self._state

    def active(self, now_ms: int) -> TrackingState | None:
        """The running tracking, or None (and a lapsed one is forgotten here)."""
        with self._lock:
            state = self._state
            if state is not None and now_ms >= state.until_ms:
                log.info("%s interval_ms=%d until_ms=%d", TRACKING_LAPSED, state.interval_ms, state.until_ms)
                self._state, self._next_ms = None, None
                return None
            return state

    def interval_s(self, now_ms: int) -> float | None:
        """How often the agent must sample while tracking runs (None: as it pleases)."""
        state = self.active(now_ms)
        return None if state is None else state.interval_ms / 1000

    def due(self, now_ms: int) -> bool:
        """Whether this tick must carry the tracked signals (and consume its slot if so)."""
        state = self.active(now_ms)
        if state is None:
            return False
        with self._lock:
            interval, slot, last = state.interval_ms, self._next_ms, self._last_tick_ms
            self._last_tick_ms = now_ms
            if slot is None or now_ms >= slot + interval:  # first fix, or woke after a long gap
                self._next_ms = now_ms + interval
                return True
            early = interval * EARLY_FRACTION
            if last is not None and now_ms > last:
                early = min(early, (now_ms - last) / 2)  # the next tick would not be nearer the slot
            if now_ms >= slot - early:
                self._next_ms = slot + interval
                return True
            return False
