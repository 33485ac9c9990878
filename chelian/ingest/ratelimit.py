"""Per-car token buckets, so one faulty or hostile car cannot flood the platform, and the
sampler that keeps such a car's refusals from flooding the dead-letter table and the log.

A bucket refills at `rate_per_s` up to `burst`; each message takes one token. The burst
is generous on purpose: a car replaying its store-and-forward queue after an outage sends
a backlog quickly, and that is legitimate.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


class RejectionSampler:
    """Keeps one dead-letter row and log line per (car, reason) per interval for flood reasons.

    A car over its rate (or sending oversized payloads) would otherwise turn every refused
    message into a row of up to `max_payload_bytes` and a WARNING line: the flood the rate
    limit exists to stop. The first refusal of each window is kept; the rest are only counted
    (the caller still counts every one in metrics), and the next kept one says how many were
    left out since the previous sample.

    Example:
        sampler = RejectionSampler(interval_s=60)
        sampler.admit("VIN", "rate_limited")   # 0: keep it (none left out before it)
        sampler.admit("VIN", "rate_limited")   # None: count it, do not keep it
        # ... 60 s later:
        sampler.admit("VIN", "rate_limited")   # 1: keep it; one was left out since the last kept one
    """

    _PRUNE_AT = 10_000

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # -> (window start, left out)

    def admit(self, key: str, reason: str) -> int | None:
        """How many were left out before this one if it is to be kept, None to leave it out."""
        now = self._clock()
        window = self._windows.get((key, reason))
        if window is not None and now - window[0] < self._interval:
            self._windows[(key, reason)] = (window[0], window[1] + 1)
            return None
        if len(self._windows) >= self._PRUNE_AT:
            self._prune(now)
        self._windows[(key, reason)] = (now, 0)
        return window[1] if window is not None else 0

    def _prune(self, now: float) -> None:
        """Forget windows long over (their left-out counts are in the metrics already)."""
        old = [k for k, (start, _) in self._windows.items() if now - start >= self._interval]
        for k in old:
            del self._windows[k]
