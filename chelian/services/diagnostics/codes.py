"""SAE J2012 generic trouble codes: descriptions and a severity per code family.

chelian keeps its own table of facts rather than depending on the `obd` package: `obd`
pulls in pyserial (a serial-port hardware library) and pint just to read a dict, and the
cloud never talks to an OBD adapter. The table holds the generic (ISO/SAE controlled,
second character 0) powertrain codes owners meet most; an unknown but well-formed code
is still tracked, described by its family.

Severity is per family (ranges of the first four characters), because what an owner must do
depends on the system: a misfire or overheating damages the engine within minutes
(`critical`/`high`), an evaporative leak can wait for the next service (`low`).

Example:
    describe("P0301")   # DtcInfo("P0301", "Cylinder 1 misfire detected", "Ignition / misfire", "high")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

CRITICAL: Final = "critical"
HIGH: Final = "high"
MEDIUM: Final = "medium"
LOW: Final = "low"
SEVERITY_ORDER: Final = {CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3}

CODE_PATTERN: Final = re.compile(r"^[PCBU][0-3][0-9A-F]{3}$")


@dataclass(frozen=True, slots=True)
class DtcInfo:
    code: str
    description: str
    family: str
    severity: str


# (first code, last code, family, severity): checked in order, first match wins. Codes are
# hexadecimal in their last three characters, so ranges end in F (P03A0 is a misfire code too).
FAMILIES: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("P0217", "P0217", "Engine overheating", CRITICAL),
    ("P0520", "P0524", "Engine oil pressure", CRITICAL),
    ("P0100", "P01FF", "Fuel and air metering", MEDIUM),
    ("P0200", "P02FF", "Fuel and air metering (injectors)", MEDIUM),
    ("P0300", "P03FF", "Ignition / misfire", HIGH),
    ("P0400", "P04FF", "Auxiliary emission controls", LOW),
    ("P0500", "P05FF", "Vehicle speed, idle control and auxiliary inputs", MEDIUM),
    ("P0600", "P06FF", "Computer and output circuits", MEDIUM),
    ("P0700", "P09FF", "Transmission", MEDIUM),
    ("P0A00", "P0FFF", "Hybrid and electric propulsion", HIGH),
    ("P0000", "P00FF", "Fuel and air metering, auxiliary emission controls", MEDIUM),
    ("P1000", "P3FFF", "Manufacturer-specific powertrain", MEDIUM),
    ("C0000", "C3FFF", "Chassis", HIGH),
    ("B0000", "B3FFF", "Body", LOW),
    ("U0000", "U3FFF", "Network communication", MEDIUM),
)

DESCRIPTIONS: Final[dict[str, str]] = {
    "P0011": "Intake camshaft position timing over-advanced (bank 1)",
    "P0101": "Mass air flow circuit range/performance",
    "P0113": "Intake air temperature sensor 1 circuit high",
    "P0117": "Engine coolant temperature circuit low",
    "P0118": "Engine coolant temperature circuit high",
    "P0128": "Coolant thermostat (coolant temperature below regulating temperature)",
    "P0130": "O2 sensor circuit (bank 1, sensor 1)",
    "P0171": "System too lean (bank 1)",
    "P0172": "System too rich (bank 1)",
    "P0174": "System too lean (bank 2)",
    "P0217": "Engine coolant over temperature condition",
    "P0300": "Random/multiple cylinder misfire detected",
    **{f"P030{n}": f"Cylinder {n} misfire detected" for n in range(1, 9)},
    "P0325": "Knock sensor 1 circuit (bank 1 or single sensor)",
    "P0335": "Crankshaft position sensor A circuit",
    "P0340": "Camshaft position sensor A circuit (bank 1 or single sensor)",
    "P0401": "Exhaust gas recirculation flow insufficient detected",
    "P0420": "Catalyst system efficiency below threshold (bank 1)",
    "P0430": "Catalyst system efficiency below threshold (bank 2)",
    "P0440": "Evaporative emission system",
    "P0442": "Evaporative emission system leak detected (small leak)",
    "P0455": "Evaporative emission system leak detected (large leak)",
    "P0456": "Evaporative emission system leak detected (very small leak)",
    "P0500": "Vehicle speed sensor A",
    "P0505": "Idle air control system",
    "P0520": "Engine oil pressure sensor/switch A circuit",
    "P0521": "Engine oil pressure sensor/switch A range/performance",
    "P0522": "Engine oil pressure sensor/switch A circuit low",
    "P0562": "System voltage low",
    "P0563": "System voltage high",
    "P0600": "Serial communication link",
    "P0700": "Transmission control system (MIL request)",
    "P0715": "Input/turbine speed sensor A circuit",
    "P0741": "Torque converter clutch solenoid circuit performance/stuck off",
    "U0100": "Lost communication with ECM/PCM A",
}


def is_code(text: str) -> bool:
    return bool(CODE_PATTERN.match(text))


def describe(code: str) -> DtcInfo:
    """Description and severity of a well-formed code (ValueError otherwise)."""
    code = code.strip().upper()
    if not is_code(code):
        raise ValueError(f"{code!r} is not an SAE J2012 trouble code (e.g. P0301)")
    family, severity = "Unknown", MEDIUM
    for first, last, name, level in FAMILIES:
        if code[0] == first[0] and first <= code <= last:
            family, severity = name, level
            break
    return DtcInfo(code, DESCRIPTIONS.get(code, f"{family} ({code})"), family, severity)
