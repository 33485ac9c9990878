"""Trouble codes and maintenance reminders, as an ingest CommitObserver.

Codes arrive two ways and both end in the `dtcs` table and on the bus:

* `Vehicle.Diagnostics.DTCList`: the car's full list of active codes. A code that appears
  raises `dtc_reported`; an active code that disappears from the list raises `dtc_cleared`.
* a `dtc_reported` car event `{code, status: active|pending|cleared, freeze_frame: {...}}`:
  one code at a time, with the signals the ECU froze when it set the code.

Each car's open codes are kept in memory (loaded from `dtcs` the first time the car reports
anything diagnostic), so a list that repeats every message costs one set comparison.

Maintenance: every message with an odometer reading, for a car with plans, is checked against
its plans (loaded every `poll_s`); a plan that became due raises `maintenance_due` once.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

from sqlalchemy import Engine

from chelian.events import DomainEvent, EventBus
from chelian.ingest.batch import WriteResult
from chelian.services.diagnostics.codes import describe, is_code
from chelian.services.diagnostics.maintenance import ODOMETER, remaining
from chelian.services.geofences.alerts import (
    DTC_CLEARED,
    DTC_REPORTED,
    MAINTENANCE_DUE,
    AlertSink,
    CarDirectory,
)
from chelian.storage.repositories import dtcs as repo
from chelian.storage.repositories.dtcs import ACTIVE, CLEARED, PENDING, Plan

log = logging.getLogger("chelian.diagnostics")

DTC_LIST: Final = "Vehicle.Diagnostics.DTCList"
DTC_EVENT: Final = "dtc_reported"
"""The car-side event type (same name as the domain event it turns into)."""
_STATUSES: Final = (ACTIVE, PENDING, CLEARED)
_NUM, _TEXT = 4, 5


class DiagnosticsDetector:
    def __init__(self, engine: Engine, bus: EventBus | None, cars: CarDirectory | None = None, *,
                 poll_s: float = 2.0) -> None:
        self.engine = engine
        self.cars = cars or CarDirectory(engine)
        self.sink = AlertSink(engine, bus)
        self.poll_s = poll_s
        self._open: dict[int, dict[str, str]] = {}
        self._plans: dict[int, list[Plan]] = {}
        self._plans_at: float | None = None
        self._writes: list[tuple[int, str, str, int, dict[str, Any] | None]] = []
        self._notified: list[tuple[int, int]] = []

    def on_committed(self, result: WriteResult) -> None:
        self._refresh_plans()
        self._prefetch(result)
        for msg in sorted(result.new_telemetry, key=lambda m: m.ts_ms):
            row = msg.samples.get(DTC_LIST)
            if row is not None and row[_TEXT] is not None:
                self._list(msg.vehicle_id, msg.seq, msg.ts_ms, json.loads(row[_TEXT]))
            odo = msg.samples.get(ODOMETER)
            if odo is not None and odo[_NUM] is not None and msg.vehicle_id in self._plans:
                self._maintenance(msg.vehicle_id, msg.ts_ms, odo[_NUM])
        for ev in result.new_events:
            if ev.type == DTC_EVENT:
                self._event(ev.vehicle_id, ev.seq, ev.ts_ms, ev.data)
        if self._writes or self._notified:
            writes, self._writes = self._writes, []
            notified, self._notified = self._notified, []
            with self.engine.begin() as conn:
                for vehicle_id, code, status, ts_ms, frame in writes:
                    repo.save(conn, vehicle_id, code, status, ts_ms, frame)
                for plan_id, ts_ms in notified:
                    repo.mark_notified(conn, plan_id, ts_ms)
        self.sink.flush()

    def _prefetch(self, result: WriteResult) -> None:
        """Load, in one query, the open codes of every car of this commit that reports any."""
        cars = {m.vehicle_id for m in result.new_telemetry if DTC_LIST in m.samples}
        cars |= {e.vehicle_id for e in result.new_events if e.type == DTC_EVENT}
        missing = [v for v in cars if v not in self._open]
        if missing:
            with self.engine.connect() as conn:
                self._open.update(repo.open_codes_many(conn, missing))
            self.cars.prefetch(missing)

    def _codes(self, vehicle_id: int) -> dict[str, str]:
        codes = self._open.get(vehicle_id)
        if codes is None:
            with self.engine.connect() as conn:
                codes = self._open[vehicle_id] = repo.open_codes(conn, vehicle_id)
        return codes

    def _list(self, vehicle_id: int, seq: int, ts_ms: int, listed: list[str]) -> None:
        codes = self._codes(vehicle_id)
        now = {c.strip().upper() for c in listed if is_code(c.strip().upper())}
        for code in sorted(now - codes.keys()):
            self._set(vehicle_id, seq, ts_ms, code, ACTIVE, None)
        for code in sorted(c for c, s in codes.items() if s == ACTIVE and c not in now):
            self._set(vehicle_id, seq, ts_ms, code, CLEARED, None)

    def _event(self, vehicle_id: int, seq: int, ts_ms: int, data: dict[str, Any]) -> None:
        code, status = str(data.get("code", "")).strip().upper(), data.get("status", ACTIVE)
        if not is_code(code) or status not in _STATUSES:
            log.warning("dtc_event_ignored vehicle_id=%d code=%r status=%r", vehicle_id, code, status)
            return
        frame = data.get("freeze_frame") if isinstance(data.get("freeze_frame"), dict) else None
        codes = self._codes(vehicle_id)
        if status == CLEARED and code not in codes:
            return
        if status != CLEARED and codes.get(code) == status and frame is None:
            return
        self._set(vehicle_id, seq, ts_ms, code, status, frame)

    def _set(self, vehicle_id: int, seq: int, ts_ms: int, code: str, status: str,
             frame: dict[str, Any] | None) -> None:
        codes = self._codes(vehicle_id)
        if status == CLEARED:
            codes.pop(code, None)
        else:
            codes[code] = status
        self._writes.append((vehicle_id, code, status, ts_ms, frame))
        info = describe(code)
        name = DTC_CLEARED if status == CLEARED else DTC_REPORTED
        vin = self.cars.vin(vehicle_id)
        data = {"code": code, "status": status, "description": info.description, "family": info.family,
                "severity": info.severity}
        if frame is not None:
            data["freeze_frame"] = frame
        self.sink.add(DomainEvent(name, vin, vehicle_id, ts_ms, f"{vin}:{name}:{code}:{seq}", data))

    def _refresh_plans(self) -> None:
        now = time.monotonic()
        if self._plans_at is not None and now - self._plans_at < self.poll_s:
            return
        with self.engine.connect() as conn:
            plans = repo.plans(conn)
        self._plans = {}
        for plan in plans:
            self._plans.setdefault(plan.vehicle_id, []).append(plan)
        self._plans_at = now

    def _maintenance(self, vehicle_id: int, ts_ms: int, odometer_m: float) -> None:
        plans = self._plans[vehicle_id]
        for i, plan in enumerate(plans):
            if plan.notified_ms is not None:
                continue
            reminder = remaining(plan, odometer_m, ts_ms)
            if not reminder.due:
                continue
            plans[i] = Plan(*(plan.id, plan.vehicle_id, plan.name, plan.every_km, plan.every_days,
                              plan.last_done_km, plan.last_done_ms, ts_ms))
            self._notified.append((plan.id, ts_ms))
            vin = self.cars.vin(vehicle_id)
            key = f"{vin}:{MAINTENANCE_DUE}:{plan.id}:{plan.last_done_ms}"
            self.sink.add(DomainEvent(
                MAINTENANCE_DUE, vin, vehicle_id, ts_ms, key,
                {"plan_id": plan.id, "name": plan.name, "reasons": reminder.reasons,
                 "km_left": reminder.km_left, "days_left": reminder.days_left}))
