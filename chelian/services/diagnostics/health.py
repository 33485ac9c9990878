"""A car's health report: one read of its latest state, open codes and maintenance plans.

Each check is a row of the `CHECKS` table (signal, label, low/high warning thresholds), so
adding a reading is one line. Thresholds are conservative owner-facing warnings, not
workshop limits: a resting 12 V battery under 12.0 V will soon fail to crank; tyres under
200 kPa (29 psi) are below almost every passenger car's placard pressure; a car reporting
its own `IsPressureLow` flag is believed whatever the number says.

Example:
    report = health_report(conn, catalog, vehicle_id, now_ms())
    report["warnings"]     # ["Tyre front left pressure low (180 kPa)", ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection

from chelian.services.diagnostics.codes import SEVERITY_ORDER, describe
from chelian.services.diagnostics.maintenance import ODOMETER, remaining
from chelian.signals import Catalog
from chelian.storage.repositories import dtcs as dtc_repo
from chelian.storage.repositories.telemetry import latest_state


@dataclass(frozen=True, slots=True)
class Check:
    key: str
    path: str
    label: str
    low: float | None = None
    high: float | None = None


_ENGINE = "Vehicle.Powertrain.CombustionEngine"
_TYRES: Final = {f"tyre_{row}_{side.lower()}": f"Vehicle.Chassis.Axle.Row{r}.Wheel.{side}.Tire"
                 for r, row in ((1, "front"), (2, "rear")) for side in ("Left", "Right")}
LOW_TYRE_KPA: Final = 200.0
LOW_BATTERY_V: Final = 12.0
OIL_LIFE_WARN_S: Final = 30 * 86_400


def checks(low_tyre_kpa: float = LOW_TYRE_KPA, low_battery_v: float = LOW_BATTERY_V) -> tuple[Check, ...]:
    """The table with the operator's warning thresholds (`health_low_tyre_kpa`, `health_low_battery_v`)."""
    return (
        Check("battery_12v_v", "Vehicle.LowVoltageBattery.CurrentVoltage", "12 V battery voltage",
              low_battery_v, 15.0),
        Check("oil_life_s", f"{_ENGINE}.EngineOil.LifeRemaining", "Oil life remaining", OIL_LIFE_WARN_S),
        Check("oil_temperature_c", f"{_ENGINE}.EngineOil.Temperature", "Oil temperature", None, 130.0),
        Check("coolant_temperature_c", f"{_ENGINE}.ECT", "Coolant temperature", None, 115.0),
        Check("fuel_level_pct", "Vehicle.Powertrain.FuelSystem.RelativeLevel", "Fuel level", 10.0),
        Check("state_of_charge_pct", "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
              "State of charge", 10.0),
        Check("odometer_m", ODOMETER, "Odometer"),
        *(Check(f"{key}_kpa", f"{path}.Pressure", f"Tyre {key[5:].replace('_', ' ')} pressure", low_tyre_kpa)
          for key, path in _TYRES.items()),
    )


CHECKS: Final[tuple[Check, ...]] = checks()


def health_report(conn: Connection, catalog: Catalog, vehicle_id: int, now_ms: int,
                  table: tuple[Check, ...] = CHECKS) -> dict[str, Any]:
    paths = [c.path for c in table] + [f"{p}.IsPressureLow" for p in _TYRES.values()]
    state = latest_state(conn, catalog, vehicle_id, paths)
    readings: dict[str, Any] = {}
    warnings: list[str] = []
    for check in table:
        entry = state.get(check.path)
        if entry is None or entry.value is None:
            readings[check.key] = None
            continue
        value = entry.value
        readings[check.key] = {"value": value, "unit": entry.unit, "ts_ms": entry.ts_ms}
        if check.low is not None and isinstance(value, int | float) and value < check.low:
            warnings.append(f"{check.label} low ({value:g}{' ' + entry.unit if entry.unit else ''})")
        if check.high is not None and isinstance(value, int | float) and value > check.high:
            warnings.append(f"{check.label} high ({value:g}{' ' + entry.unit if entry.unit else ''})")
    for key, path in _TYRES.items():
        flag, tyre = state.get(f"{path}.IsPressureLow"), f"Tyre {key[5:].replace('_', ' ')}"
        if flag is not None and flag.value is True and not any(w.startswith(tyre) for w in warnings):
            warnings.append(f"{tyre} pressure low (reported by the car)")
    codes = []
    for row in dtc_repo.for_vehicle(conn, vehicle_id, open_only=True):
        info = describe(row.code)
        codes.append({"code": row.code, "status": row.status, "description": info.description,
                      "severity": info.severity, "since_ms": row.first_seen_ms})
    codes.sort(key=lambda c: (SEVERITY_ORDER[c["severity"]], c["code"]))
    warnings += [f"{c['code']} {c['description']} ({c['severity']})" for c in codes
                 if c["severity"] in ("critical", "high")]
    odo = state.get(ODOMETER)
    odometer_m = float(odo.value) if odo is not None and odo.value is not None else None  # type: ignore[arg-type]
    maintenance = [reminder_dict(remaining(p, odometer_m, now_ms))
                   for p in dtc_repo.plans(conn, vehicle_id)]
    warnings += [f"{m['name']} due" for m in maintenance if m["due"]]
    return {"readings": readings, "open_dtcs": codes, "maintenance": maintenance, "warnings": warnings,
            "ok": not warnings}


def reminder_dict(reminder) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    p = reminder.plan
    return {"id": p.id, "name": p.name, "every_km": p.every_km, "every_days": p.every_days,
            "last_done_km": p.last_done_km, "last_done_ms": p.last_done_ms,
            "km_left": None if reminder.km_left is None else round(reminder.km_left, 1),
            "days_left": None if reminder.days_left is None else round(reminder.days_left, 1),
            "due": reminder.due, "reasons": reminder.reasons}
