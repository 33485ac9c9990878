"""The signal catalog: which COVESA VSS signals chelian accepts, their type, unit and range.

The built-in table is chelian's own list of facts (VSS path, datatype, unit, plausible
range); a deployment can extend it with a full VSS JSON export (`vss-tools` output, the
`vss_json` setting). Ingest rejects a path that is not in the catalog, a value of the wrong
type and a value out of range.

Example:
    catalog = Catalog.builtin()
    catalog.check("Vehicle.Speed", 42.0)        # returns 42.0
    catalog.check("Vehicle.Speed", "fast")      # raises SignalError("wrong_type", ...)
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from chelian.errors import ConfigError

INT_BOUNDS: Final = {
    "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1),
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1),
}
FLOAT_TYPES: Final = ("float", "double")
TEXT_TYPES: Final = ("string",)
DATATYPES: Final = (*INT_BOUNDS, *FLOAT_TYPES, *TEXT_TYPES, "boolean", "string[]")


class SignalError(ValueError):
    """A value the catalog refuses; `reason` is one of the rejection reasons ingest counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Signal:
    path: str
    datatype: str
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    description: str = ""

    @property
    def stored_as_text(self) -> bool:
        """Strings and arrays live in `value_text`; numbers and booleans in `value_num`."""
        return self.datatype in ("string", "string[]")


def _s(path: str, datatype: str, unit: str | None = None, lo: float | None = None, hi: float | None = None,
       allowed: tuple[str, ...] | None = None, description: str = "") -> Signal:
    return Signal(path, datatype, unit, lo, hi, allowed, description)


_DOORS = [f"Vehicle.Cabin.Door.Row{r}.{s}" for r in (1, 2) for s in ("DriverSide", "PassengerSide")]
_WHEELS = [f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire" for r in (1, 2) for s in ("Left", "Right")]

# Ranges are physical plausibility limits, not the VSS datatype's limits: a car reporting
# 900 km/h has a fault, and we would rather dead-letter it than draw it on a map.
BUILTIN_SIGNALS: Final[tuple[Signal, ...]] = (
    _s("Vehicle.Speed", "float", "km/h", -60, 500, description="Vehicle speed"),
    _s("Vehicle.AverageSpeed", "float", "km/h", 0, 500),
    _s("Vehicle.IsMoving", "boolean"),
    _s("Vehicle.TraveledDistance", "uint32", "m", description="Odometer"),
    _s("Vehicle.TripMeterReading", "uint32", "m"),
    _s("Vehicle.CurrentLocation.Latitude", "double", "degrees", -90, 90),
    _s("Vehicle.CurrentLocation.Longitude", "double", "degrees", -180, 180),
    _s("Vehicle.CurrentLocation.Heading", "double", "degrees", 0, 360),
    _s("Vehicle.CurrentLocation.Altitude", "double", "m", -500, 9000),
    _s("Vehicle.CurrentLocation.HorizontalAccuracy", "double", "m", 0, 100000),
    _s("Vehicle.Acceleration.Longitudinal", "float", "m/s^2", -300, 300),
    _s("Vehicle.Acceleration.Lateral", "float", "m/s^2", -300, 300),
    _s("Vehicle.Acceleration.Vertical", "float", "m/s^2", -300, 300),
    _s("Vehicle.AngularVelocity.Yaw", "float", "degrees/s", -2000, 2000),
    _s("Vehicle.LowVoltageSystemState", "string",
       allowed=("UNDEFINED", "LOCK", "OFF", "ACC", "ON", "START"), description="Ignition state"),
    _s("Vehicle.LowVoltageBattery.CurrentVoltage", "float", "V", 0, 60),
    _s("Vehicle.LowVoltageBattery.CurrentCurrent", "float", "A", -2000, 2000),
    _s("Vehicle.Powertrain.Type", "string", allowed=("COMBUSTION", "HYBRID", "ELECTRIC")),
    _s("Vehicle.Powertrain.Range", "uint32", "m", 0, 5_000_000),
    _s("Vehicle.Powertrain.FuelSystem.RelativeLevel", "uint8", "percent", 0, 100),
    _s("Vehicle.Powertrain.FuelSystem.AbsoluteLevel", "float", "l", 0, 1500),
    _s("Vehicle.Powertrain.FuelSystem.Range", "uint32", "m", 0, 5_000_000),
    _s("Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", "float", "percent", 0, 100),
    _s("Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed", "float", "percent", 0, 100),
    _s("Vehicle.Powertrain.TractionBattery.Charging.IsCharging", "boolean"),
    _s("Vehicle.Powertrain.CombustionEngine.IsRunning", "boolean"),
    _s("Vehicle.Powertrain.CombustionEngine.Speed", "float", "rpm", 0, 20000),
    _s("Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature", "float", "Celsius", -60, 250),
    _s("Vehicle.Powertrain.CombustionEngine.EngineOil.LifeRemaining", "int32", "s"),
    _s("Vehicle.Powertrain.Transmission.CurrentGear", "int8", None, -1, 10),
    _s("Vehicle.Chassis.ParkingBrake.IsEngaged", "boolean"),
    _s("Vehicle.Chassis.Accelerator.PedalPosition", "uint8", "percent", 0, 100),
    _s("Vehicle.Chassis.Brake.PedalPosition", "uint8", "percent", 0, 100),
    *(_s(f"{d}.IsLocked", "boolean") for d in _DOORS),
    *(_s(f"{d}.IsOpen", "boolean") for d in _DOORS),
    _s("Vehicle.Body.Trunk.Rear.IsOpen", "boolean"),
    _s("Vehicle.Body.Trunk.Rear.IsLocked", "boolean"),
    _s("Vehicle.Body.Horn.IsActive", "boolean"),
    _s("Vehicle.Body.Lights.Hazard.IsSignaling", "boolean"),
    *(_s(f"{w}.Pressure", "uint16", "kPa", 0, 1000) for w in _WHEELS),
    *(_s(f"{w}.IsPressureLow", "boolean") for w in _WHEELS),
    _s("Vehicle.Cabin.Seat.Row1.DriverSide.Airbag.IsDeployed", "boolean"),
    _s("Vehicle.Cabin.Seat.Row1.PassengerSide.Airbag.IsDeployed", "boolean"),
    _s("Vehicle.Cabin.HVAC.AmbientAirTemperature", "float", "Celsius", -60, 90),
    _s("Vehicle.Exterior.AirTemperature", "float", "Celsius", -70, 70),
    _s("Vehicle.Diagnostics.DTCCount", "uint8"),
    _s("Vehicle.Diagnostics.DTCList", "string[]", description="Active diagnostic trouble codes, e.g. P0301"),
    _s("Vehicle.Service.DistanceToService", "float", "km", -100000, 100000),
    _s("Vehicle.Service.TimeToService", "int32", "s"),
    _s("Vehicle.Service.IsServiceDue", "boolean"),
)


class Catalog:
    """A lookup of signals by VSS path that validates values."""

    def __init__(self, signals: Iterable[Signal]) -> None:
        self._by_path: dict[str, Signal] = {s.path: s for s in signals}
        self.fast_checks: dict[str, tuple[str, float, float, frozenset[str] | None]] = {
            s.path: fast for s in self._by_path.values() if (fast := _fast_check(s)) is not None
        }
        """Hot-path table for ingest: path -> (kind, min, max, allowed strings).

        kind is "f" (float), "i" (integer), "b" (boolean) or "s" (string). A value of exactly
        that Python type inside the bounds (or the allowed set) needs no further checking;
        anything else takes the general `check` path, which explains the refusal.
        """

    @classmethod
    def builtin(cls) -> Catalog:
        return cls(BUILTIN_SIGNALS)

    @classmethod
    def load(cls, vss_json: Path | None = None) -> Catalog:
        """The built-in catalog, extended by a VSS JSON export when one is given.

        Built-in entries win: their ranges are tighter than the spec's datatype limits.
        Raises ConfigError (with the path and the reason) for a file that is not a VSS export.
        """
        signals = read_vss_json(vss_json) if vss_json else []
        return cls([*signals, *BUILTIN_SIGNALS])

    def __contains__(self, path: object) -> bool:
        return path in self._by_path

    def __iter__(self) -> Iterator[Signal]:
        return iter(self._by_path.values())

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, path: str) -> Signal | None:
        return self._by_path.get(path)

    def check(self, path: str, value: Any) -> Any:
        """Return `value` if `path` accepts it, else raise SignalError with the reason."""
        signal = self._by_path.get(path)
        if signal is None:
            raise SignalError("unknown_signal", f"{path} is not a known signal")
        return check_value(signal, value)


def _fast_check(signal: Signal) -> tuple[str, float, float, frozenset[str] | None] | None:
    t = signal.datatype
    lo = -sys.float_info.max if signal.min is None else float(signal.min)
    hi = sys.float_info.max if signal.max is None else float(signal.max)
    if t == "boolean":
        return ("b", 0.0, 0.0, None)
    if t in FLOAT_TYPES:
        # open bounds become the largest finite doubles, so infinities still take the slow path
        return ("f", lo, hi, None)
    if t in INT_BOUNDS:
        tlo, thi = INT_BOUNDS[t]
        return ("i", max(lo, tlo), min(hi, thi), None)
    if t == "string":
        return ("s", 0.0, 0.0, frozenset(signal.allowed) if signal.allowed else None)
    return None


def check_value(signal: Signal, value: Any) -> Any:
    t = signal.datatype
    if t == "boolean":
        if type(value) is not bool:
            raise SignalError("wrong_type", f"{signal.path} expects boolean, got {type(value).__name__}")
        return value
    if t in FLOAT_TYPES or t in INT_BOUNDS:
        if type(value) is bool or not isinstance(value, int | float):
            raise SignalError("wrong_type", f"{signal.path} expects {t}, got {type(value).__name__}")
        if t in INT_BOUNDS:
            if isinstance(value, float):
                if not value.is_integer():
                    raise SignalError("wrong_type", f"{signal.path} expects {t}, got {value!r}")
                value = int(value)
            lo, hi = INT_BOUNDS[t]
            if not lo <= value <= hi:
                raise SignalError("out_of_range", f"{signal.path}={value} outside {t} [{lo}, {hi}]")
        elif not math.isfinite(value):
            raise SignalError("out_of_range", f"{signal.path}={value} is not a finite number")
        if (signal.min is not None and value < signal.min) or (signal.max is not None and value > signal.max):
            raise SignalError("out_of_range", f"{signal.path}={value} outside "
                                              f"[{signal.min}, {signal.max}] {signal.unit or ''}")
        return value
    if t == "string":
        if not isinstance(value, str):
            raise SignalError("wrong_type", f"{signal.path} expects string, got {type(value).__name__}")
        if signal.allowed is not None and value not in signal.allowed:
            raise SignalError("out_of_range",
                              f"{signal.path}={value!r} not one of {', '.join(signal.allowed)}")
        return value
    if t == "string[]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SignalError("wrong_type", f"{signal.path} expects a list of strings")
        return value
    raise SignalError("wrong_type", f"{signal.path} has datatype {t} that chelian cannot store")


def read_vss_json(path: Path | str) -> list[Signal]:
    """Every sensor/actuator/attribute leaf of a `vspec export json` tree.

    Raises ConfigError naming the file and the reason when it cannot be read, is not JSON,
    or is not a VSS tree (an object of nodes with a `type`, branches with `children`).
    The parse is cached per file version, so validating settings and then building the
    catalog reads the file once.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read VSS JSON export {p}: {exc.strerror or exc}") from exc
    return list(_read_vss_json(str(p), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=4)
def _read_vss_json(path: str, _mtime_ns: int, _size: int) -> tuple[Signal, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read VSS JSON export {path}: {reason}") from exc
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"VSS JSON export {path} is not valid JSON: {exc}") from exc
    if not isinstance(tree, dict) or not tree:
        raise ConfigError(f"VSS JSON export {path} is not a VSS tree: expected an object such as "
                          '{"Vehicle": {"type": "branch", "children": {...}}}')

    def walk(node: dict[str, Any], prefix: str) -> Iterator[Signal]:
        for name, child in node.items():
            full = f"{prefix}.{name}" if prefix else name
            if not isinstance(child, dict) or not isinstance(child.get("type"), str):
                raise ConfigError(f"VSS JSON export {path} is not a VSS tree: node {full} has no \"type\"")
            if child["type"] == "branch":
                children = child.get("children", {})
                if not isinstance(children, dict):
                    raise ConfigError(f"VSS JSON export {path} is not a VSS tree: "
                                      f"children of {full} is not an object")
                yield from walk(children, full)
            elif child.get("datatype") in DATATYPES:
                allowed = child.get("allowed")
                yield Signal(full, child["datatype"], child.get("unit"), child.get("min"), child.get("max"),
                             tuple(allowed) if allowed else None, child.get("description", ""))

    signals = tuple(walk(tree, ""))
    if not signals:
        raise ConfigError(f"VSS JSON export {path} holds no signals chelian can store")
    return signals
