"""Scripted things that happen to simulated cars, one behaviour per module.

A behaviour is an object with `step(car, dt_s)`, called after every physics step of the car
it is attached to (`SimVehicle.behaviours`); it may change the car's state. The CLI picks
them per car: `--scenario crash:3` makes car 3 (0-based, the owner's 4th simulated car)
crash after a minute, `--scenario breakdown:0@300` breaks car 0 down after 5 minutes,
`--scenario towed:1` has car 1 stolen on a tow truck.

Example:
    spec = parse_scenario("crash:3@90")     # Scenario("crash", car=3, after_s=90.0)
    car.behaviours.append(spec.behaviour())
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chelian.sim.behaviours.breakdown import Breakdown
from chelian.sim.behaviours.crash import Crash
from chelian.sim.behaviours.faults import RandomFaults
from chelian.sim.behaviours.towed import Towed
from chelian.sim.behaviours.unlocked import LeftUnlocked

SCENARIOS: dict[str, Callable[..., Any]] = {"crash": Crash, "breakdown": Breakdown, "unlocked": LeftUnlocked,
                                            "towed": Towed}
DEFAULT_AFTER_S = 60.0
_SPEC = re.compile(r"^(?P<name>[a-z_]+):(?P<car>\d+)(?:@(?P<after>\d+(?:\.\d+)?))?$")

__all__ = ["SCENARIOS", "Breakdown", "Crash", "LeftUnlocked", "RandomFaults", "Scenario", "Towed",
           "parse_scenario"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    car: int
    after_s: float = DEFAULT_AFTER_S

    def behaviour(self) -> Any:
        return SCENARIOS[self.name](after_s=self.after_s)


def parse_scenario(text: str) -> Scenario:
    """`NAME:CAR[@SECONDS]`, e.g. `crash:3` or `unlocked:0@10`."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise ValueError(f"scenario {text!r} is not NAME:CAR[@SECONDS] (e.g. crash:3 or breakdown:0@300)")
    if match["name"] not in SCENARIOS:
        raise ValueError(f"unknown scenario {match['name']!r}; known: {', '.join(sorted(SCENARIOS))}")
    after = float(match["after"]) if match["after"] is not None else DEFAULT_AFTER_S
    return Scenario(match["name"], int(match["car"]), after)
