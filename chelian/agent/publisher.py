"""Which signals to send now: per-signal rate limit, deadband and heartbeat.

A car samples its signals every tick (1 Hz by default), but most of them do not change
most of the time: a parked car's door locks, its odometer, its tyre pressures. Sending the
whole snapshot every second would cost the cloud ~30 times the rows and bandwidth it needs.
So each signal is sent when it *changed enough* since it was last sent (`deadband`), but no
more often than `min_interval_s`, and at least every `max_interval_s` even if it did not
change (the heartbeat that keeps the cloud's latest state from going stale, and the
"full snapshot every minute" of the protocol).

Rules are looked up by VSS path with shell-style patterns, first match wins, so a car
integrator can override one signal without restating the table (`PolicyTable.with_rules`).

Two details that matter on a map: comparing against the last *sent* value (not the last
sampled) lets slow drift accumulate until it crosses the deadband; and reaching or leaving
zero always counts, so a car that stopped never shows 0.8 km/h for a minute. High-rate
tracking (`tracking.py`) bypasses all of it for position, heading and speed (`force`). When some
heartbeat is due, every signal past half its heartbeat rides along, so heartbeats line up
into one message instead of trickling out one signal at a time.

Example:
    picker = ChangePicker(PolicyTable.standard())
    picker.select({"Vehicle.Speed": 50.0}, now_s=0.0)   # {"Vehicle.Speed": 50.0}: never sent
    picker.select({"Vehicle.Speed": 50.4}, now_s=1.0)   # {}: inside the 1 km/h deadband
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SignalPolicy:
    min_interval_s: float = 0.0
    """Never send this signal more often than this (a rate limit per signal)."""
    max_interval_s: float = 60.0
    """Send it at least this often, changed or not (heartbeat)."""
    deadband: float = 0.0
    """A numeric change smaller than this is no change. Ignored for booleans, strings, lists."""

    def __post_init__(self) -> None:
        if self.min_interval_s < 0 or self.deadband < 0 or self.max_interval_s <= self.min_interval_s:
            raise ValueError(f"invalid signal policy {self}: "
                             "need 0 <= min_interval < max_interval and deadband >= 0")


DISCRETE = SignalPolicy()
"""States (locks, doors, ignition, DTCs): every change at once, heartbeat every minute."""

DEFAULT_RULES: tuple[tuple[str, SignalPolicy], ...] = (
    ("Vehicle.CurrentLocation.Latitude", SignalPolicy(1.0, 60.0, 0.00001)),  # ~1 m
    ("Vehicle.CurrentLocation.Longitude", SignalPolicy(1.0, 60.0, 0.00001)),
    ("Vehicle.CurrentLocation.Heading", SignalPolicy(1.0, 60.0, 2.0)),
    ("Vehicle.Speed", SignalPolicy(0.0, 60.0, 1.0)),
    ("Vehicle.Acceleration.*", SignalPolicy(1.0, 60.0, 0.5)),
    ("Vehicle.TraveledDistance", SignalPolicy(5.0, 60.0, 100.0)),
    ("Vehicle.TripMeterReading", SignalPolicy(5.0, 60.0, 100.0)),
    ("Vehicle.Powertrain.CombustionEngine.Speed", SignalPolicy(1.0, 60.0, 150.0)),
    ("Vehicle.LowVoltageBattery.CurrentVoltage", SignalPolicy(5.0, 60.0, 0.1)),
    ("Vehicle.Chassis.Axle.*.Tire.Pressure", SignalPolicy(10.0, 60.0, 3.0)),
    ("*Temperature", SignalPolicy(10.0, 60.0, 0.5)),
    ("Vehicle.Powertrain.*Range", SignalPolicy(10.0, 60.0, 1000.0)),
    ("Vehicle.Powertrain.FuelSystem.*Level", SignalPolicy(5.0, 60.0, 0.5)),
    ("Vehicle.Powertrain.TractionBattery.StateOfCharge.*", SignalPolicy(5.0, 60.0, 0.5)),
)


class PolicyTable:
    """VSS path -> SignalPolicy, by the first matching pattern (cached per path)."""

    def __init__(self, rules: tuple[tuple[str, SignalPolicy], ...], default: SignalPolicy = DISCRETE) -> None:
        self.rules, self.default = rules, default
        self._cache: dict[str, SignalPolicy] = {}

    @classmethod
    def standard(cls) -> PolicyTable:
        """chelian's defaults (DEFAULT_RULES; discrete states for everything else)."""
        return cls(DEFAULT_RULES)

    def with_rules(self, rules: dict[str, SignalPolicy]) -> PolicyTable:
        """A table where `rules` (pattern -> policy) win over this table's."""
        return PolicyTable((*rules.items(), *self.rules), self.default)

    def scaled(self, heartbeat_s: float) -> PolicyTable:
        """The same table with every heartbeat set to `heartbeat_s` (the fleet's full_snapshot_s)."""
        def fix(p: SignalPolicy) -> SignalPolicy:
            return SignalPolicy(min(p.min_interval_s, heartbeat_s / 2), heartbeat_s, p.deadband)
        return PolicyTable(tuple((pat, fix(p)) for pat, p in self.rules), fix(self.default))

    def __getitem__(self, path: str) -> SignalPolicy:
        policy = self._cache.get(path)
        if policy is None:
            policy = next((p for pat, p in self.rules if fnmatch.fnmatchcase(path, pat)), self.default)
            self._cache[path] = policy
        return policy


def _changed(old: Any, new: Any, deadband: float) -> bool:
    if type(new) in (int, float) and type(old) in (int, float):  # bool is not a number here
        if (old == 0) != (new == 0):
            return True
        return abs(new - old) >= deadband if deadband > 0 else new != old
    return new != old


class ChangePicker:
    """Remembers what was sent when, and picks from each snapshot what is due.

    Per path it keeps [value sent, heartbeat due at, changes allowed from, deadband, half
    heartbeat], so the common case, an unchanged value before its heartbeat, costs one dict
    lookup and two comparisons: a fleet of a thousand cars runs this 45 times per car per tick.
    """

    def __init__(self, table: PolicyTable) -> None:
        self.table = table
        self._sent: dict[str, list[Any]] = {}

    def _mark(self, path: str, value: Any, now_s: float) -> None:
        policy = self.table[path]
        self._sent[path] = [value, now_s + policy.max_interval_s, now_s + policy.min_interval_s,
                            policy.deadband, now_s + policy.max_interval_s / 2]

    def select(self, snapshot: dict[str, Any], now_s: float, force: Iterable[str] = ()) -> dict[str, Any]:
        """The signals of `snapshot` to send now; they count as sent from now on.

        `force` names paths sent now whatever their policy says (high-rate tracking's position).
        """
        out: dict[str, Any] = {}
        heartbeat_due = False
        sent = self._sent
        for path, value in snapshot.items():
            rec = sent.get(path)
            if rec is None:
                out[path] = value
            elif now_s >= rec[1]:
                out[path] = value
                heartbeat_due = True
            elif now_s >= rec[2] and value != rec[0] and _changed(rec[0], value, rec[3]):
                out[path] = value
        if heartbeat_due:  # line heartbeats up: whatever is past half its heartbeat rides along
            for path, value in snapshot.items():
                if path not in out and now_s >= sent[path][4]:
                    out[path] = value
        for path in force:
            if path in snapshot:
                out[path] = snapshot[path]
        for path, value in out.items():
            self._mark(path, value, now_s)
        return out

    def everything(self, snapshot: dict[str, Any], now_s: float) -> dict[str, Any]:
        """All of `snapshot` (after a reconnect), counted as sent."""
        for path, value in snapshot.items():
            self._mark(path, value, now_s)
        return dict(snapshot)
