"""Unit names as DBC files spell them, and how to convert between them.

DBC units are free text: opendbc's Toyota files say "km/h", its VW MQB file says
"Unit_KiloMeterPerHour" (Vector's naming), others say "kph" or "mph". The catalog says what
VSS wants ("km/h", "m", "Celsius", ...). One table of aliases and linear factors covers all of
them, so a mapping only names a unit when the DBC has none or gets it wrong.

Example:
    convert(60, "mph", "km/h")                    # 96.56064
    converter("Unit_KiloMeter", "m")              # Linear(factor=1000.0, offset=0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


class UnitError(ValueError):
    """A unit that is unknown, or that cannot become the unit asked for."""


@dataclass(frozen=True, slots=True)
class Unit:
    """`value_in_base = value * factor + offset`, base being the first unit of its quantity."""

    name: str
    quantity: str
    factor: float = 1.0
    offset: float = 0.0
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Linear:
    """A conversion `y = x * factor + offset`, precomputed once per mapped signal."""

    factor: float = 1.0
    offset: float = 0.0

    def __call__(self, value: float) -> float:
        return value * self.factor + self.offset


IDENTITY: Final = Linear()

UNITS: Final[tuple[Unit, ...]] = (
    Unit("km/h", "speed", aliases=("kph", "kmh", "km/hr", "kilometer per hour", "unit_kilometerperhour")),
    Unit("mph", "speed", 1.609344, aliases=("mi/h", "unit_milesperhour", "unit_mileperhour")),
    Unit("m/s", "speed", 3.6, aliases=("unit_meterpersecon", "unit_meterpersecond")),
    Unit("m", "distance", aliases=("meter", "meters", "unit_meter")),
    Unit("km", "distance", 1000.0, aliases=("kilometer", "kilometers", "unit_kilometer")),
    Unit("mi", "distance", 1609.344, aliases=("mile", "miles", "unit_mile", "unit_miles")),
    Unit("Celsius", "temperature", aliases=("c", "degc", "°c", "deg c", "unit_degrecelsi")),
    Unit("Fahrenheit", "temperature", 5 / 9, -32 * 5 / 9, aliases=("f", "degf", "°f", "deg f")),
    Unit("K", "temperature", 1.0, -273.15, aliases=("kelvin",)),
    Unit("percent", "ratio", aliases=("%", "pct", "unit_percent")),
    Unit("fraction", "ratio", 100.0, aliases=("ratio",)),
    Unit("rpm", "rotation", aliases=("1/min", "min-1", "u/min", "unit_minutinver")),
    Unit("l", "volume", aliases=("liter", "litre", "liters", "litres", "unit_liter")),
    Unit("gal", "volume", 3.785411784, aliases=("gallon", "gallons", "usgal")),
    Unit("kPa", "pressure", aliases=("kilopascal", "unit_kilopascal")),
    Unit("bar", "pressure", 100.0, aliases=("unit_bar",)),
    Unit("mbar", "pressure", 0.1, aliases=("hpa", "unit_millibar")),
    Unit("psi", "pressure", 6.894757293168361),
    Unit("V", "voltage", aliases=("volt", "volts", "unit_volt")),
    Unit("A", "current", aliases=("amp", "amps", "ampere", "unit_amper")),
    Unit("m/s^2", "acceleration", aliases=("m/s2", "m/s/s", "unit_meterperseconsquar")),
    Unit("g", "acceleration", 9.80665, aliases=("unit_forceofgravi",)),
    Unit("degrees/s", "angular_speed", aliases=("deg/s", "°/s", "unit_degreofarcpersecon")),
    Unit("degrees", "angle", aliases=("deg", "°", "unit_degreofarc")),
    Unit("s", "time", aliases=("sec", "second", "seconds", "unit_secon")),
    Unit("min", "time", 60.0, aliases=("minute", "minutes", "unit_minut")),
    Unit("h", "time", 3600.0, aliases=("hour", "hours", "unit_hours")),
)

_BY_ALIAS: Final[dict[str, Unit]] = {
    alias.casefold(): unit for unit in UNITS for alias in (unit.name, *unit.aliases)
}


def lookup(name: str | None) -> Unit | None:
    """The unit called `name` (any alias, any case), or None when the table does not know it."""
    if name is None:
        return None
    return _BY_ALIAS.get(name.strip().casefold())


def converter(source: str, target: str) -> Linear:
    """The linear map from `source` units to `target` units; UnitError if there is none."""
    src, dst = lookup(source), lookup(target)
    if src is None or dst is None:
        unknown = source if src is None else target
        raise UnitError(f"unknown unit {unknown!r}; known: {', '.join(u.name for u in UNITS)}")
    if src.quantity != dst.quantity:
        raise UnitError(f"cannot convert {source!r} ({src.quantity}) to {target!r} ({dst.quantity})")
    if src is dst:
        return IDENTITY
    # x_base = x * fs + os;  y = (x_base - od) / fd
    return Linear(src.factor / dst.factor, (src.offset - dst.offset) / dst.factor)


def convert(value: float, source: str, target: str) -> float:
    return converter(source, target)(value)
