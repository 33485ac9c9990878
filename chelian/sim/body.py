"""The slow-moving parts of a simulated car: weather, cabin, tyres, 12 V battery, energy store.

Each part is a small state object with `step(dt_s, ...)` and `signals()`; `vehicle.py` wires
them to the trip phases. Values relax towards a target with a time constant (first-order
lag) because that is how temperatures and voltages behave, and it keeps successive samples
plausible at any sampling rate.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from chelian.sim.models import CarModel

CHARGE_KW = 50.0
"""DC fast charging, so a demo shows a charge session within the hour."""
LOW_ENERGY, CHARGE_TARGET = 0.15, 0.80
"""Below LOW_ENERGY a parked car refuels or starts charging; charging stops at CHARGE_TARGET."""
MAX_RANGE_M = 5_000_000
TYRE_PLACARD_KPA = 240
WHEELS = tuple(f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire" for r in (1, 2) for s in ("Left", "Right"))


def relax(value: float, target: float, dt_s: float, tau_s: float) -> float:
    """Move `value` towards `target` as a first-order lag with time constant `tau_s`."""
    return target + (value - target) * math.exp(-dt_s / tau_s)


@dataclass
class Weather:
    """Outside air temperature: a daily cycle peaking at 15:00 around a seeded base."""

    base_c: float
    drift_c: float = 0.0

    def step(self, dt_s: float, clock_s: float, rng: random.Random) -> float:
        self.drift_c = max(-1.5, min(1.5, self.drift_c + rng.gauss(0, 0.02) * math.sqrt(dt_s)))
        return self.base_c + 5.0 * math.sin(2 * math.pi * (clock_s / 86_400 - 0.375)) + self.drift_c


@dataclass
class Cabin:
    temperature_c: float

    def step(self, dt_s: float, outside_c: float, hvac_on: bool) -> None:
        target, tau = (21.0, 300.0) if hvac_on else (outside_c, 1800.0)
        self.temperature_c = relax(self.temperature_c, target, dt_s, tau)


@dataclass
class Tyres:
    """Pressure follows tyre temperature (ideal gas); one tyre of some cars leaks slowly."""

    cold_kpa: list[float]
    reference_c: float
    temperature_c: float
    leak_kpa_per_h: list[float] = field(default_factory=lambda: [0.0] * 4)

    def step(self, dt_s: float, outside_c: float, rolling: bool) -> None:
        target = outside_c + (22.0 if rolling else 0.0)
        self.temperature_c = relax(self.temperature_c, target, dt_s, 600.0)
        leaks = zip(self.cold_kpa, self.leak_kpa_per_h, strict=True)
        self.cold_kpa = [max(0.0, p - leak * dt_s / 3600) for p, leak in leaks]

    def signals(self) -> dict[str, Any]:
        factor = (273.15 + self.temperature_c) / (273.15 + self.reference_c)
        out: dict[str, Any] = {}
        for wheel, cold in zip(WHEELS, self.cold_kpa, strict=True):
            kpa = max(0, min(1000, round(cold * factor)))
            out[f"{wheel}.Pressure"] = kpa
            out[f"{wheel}.IsPressureLow"] = kpa < 0.8 * TYRE_PLACARD_KPA
        return out


@dataclass
class LowVoltageBattery:
    """The 12 V battery: charged to ~14.2 V by the alternator/DC-DC, resting near 12.6 V."""

    resting_v: float
    voltage: float

    def step(self, dt_s: float, ignition_on: bool, rng: random.Random) -> None:
        self.resting_v = max(11.8, self.resting_v - (0.0 if ignition_on else 0.01 * dt_s / 3600))
        target = 14.2 + rng.gauss(0, 0.03) if ignition_on else self.resting_v
        self.voltage = relax(self.voltage, target, dt_s, 20.0)


@dataclass
class EnergyStore:
    """Fuel in litres or battery energy in kWh, whichever the model carries."""

    model: CarModel
    level: float
    charging: bool = False

    @property
    def fraction(self) -> float:
        return self.level / self.model.capacity

    @property
    def electric(self) -> bool:
        return self.model.powertrain == "ELECTRIC"

    def consume(self, distance_m: float, dt_s: float, ignition_on: bool) -> None:
        used = distance_m * self.model.use_per_100km / 100_000
        used += self.model.idle_per_h * dt_s / 3600 if ignition_on else 0.0
        self.level = max(0.0, self.level - used)

    def replenish(self, dt_s: float) -> float:
        """Add energy while parked; returns how much. Refuelling is instant, charging takes time."""
        if not self.electric:
            added = self.model.capacity - self.level
            self.level = self.model.capacity
            return added
        added = min(CHARGE_KW * dt_s / 3600, self.model.capacity * CHARGE_TARGET - self.level)
        self.level += max(0.0, added)
        return max(0.0, added)

    def range_m(self) -> int:
        per_m = self.model.use_per_100km / 100_000
        return int(min(MAX_RANGE_M, self.level / per_m))

    def signals(self) -> dict[str, Any]:
        return SIGNALS_BY_POWERTRAIN[self.model.powertrain](self)


def _fuel_signals(store: EnergyStore) -> dict[str, Any]:
    return {
        "Vehicle.Powertrain.FuelSystem.RelativeLevel": max(0, min(100, round(store.fraction * 100))),
        "Vehicle.Powertrain.FuelSystem.AbsoluteLevel": round(store.level, 2),
        "Vehicle.Powertrain.FuelSystem.Range": store.range_m(),
        "Vehicle.Powertrain.Range": store.range_m(),
    }


def _battery_signals(store: EnergyStore) -> dict[str, Any]:
    soc = max(0.0, min(100.0, store.fraction * 100))
    return {
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": round(soc, 2),
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed": float(round(soc)),
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging": store.charging,
        "Vehicle.Powertrain.Range": store.range_m(),
    }


SIGNALS_BY_POWERTRAIN = {"COMBUSTION": _fuel_signals, "ELECTRIC": _battery_signals}
