"""Speed-limit and curfew alerts per car, as an ingest CommitObserver.

Speed: `speed_limit_exceeded` when a reading is strictly above the car's limit; it re-arms only
once the speed has dropped to `limit - rearm_kmh` (default 5 km/h), so a car cruising at the
limit with +-1 km/h noise raises one alert per excursion, not one per message. A reading at
or just under the limit never alerts.

Curfew: `curfew_violated` when the car is used (ignition ON/START, or moving faster than
`moving_kmh`) between `curfew_start_min` and `curfew_end_min` (minutes after local midnight
in the rule's IANA time zone, the owner's; a window may span midnight). One alert per curfew
night: its idempotency key names the local date the window started on, so even after a
restart the alerts table (unique key) keeps it to one.

Rules are read from `alert_rules` every `poll_s`; a car without a rule costs one dict lookup.
The "already speeding" flag lives in memory only: after a restart mid-excursion the same
excursion can alert once more (a new message seq, so a new key) - accepted, since persisting
it would cost a write per speeding car per batch.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from chelian.events import DomainEvent, EventBus
from chelian.ingest.batch import WriteResult
from chelian.services.geofences.alerts import CURFEW_VIOLATED, SPEED_LIMIT_EXCEEDED, AlertSink, CarDirectory
from chelian.storage.repositories import alerts as repo
from chelian.storage.repositories.alerts import Rules

SPEED: Final = "Vehicle.Speed"
IGNITION: Final = "Vehicle.LowVoltageSystemState"
IGNITION_ON: Final = frozenset({"ON", "START"})
_NUM, _TEXT = 4, 5  # SampleRow indexes
DAY_MIN: Final = 24 * 60


def curfew_night(rules: Rules, ts_ms: int) -> str | None:
    """The local date (ISO) the curfew window containing `ts_ms` started on, or None if outside it."""
    start, end = rules.curfew_start_min, rules.curfew_end_min
    if start is None or end is None or start == end:
        return None
    local = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(ZoneInfo(rules.timezone))
    minute = local.hour * 60 + local.minute
    if start < end:
        return local.date().isoformat() if start <= minute < end else None
    if minute >= start:
        return local.date().isoformat()
    if minute < end:
        return (local.date() - timedelta(days=1)).isoformat()
    return None


class DrivingRulesDetector:
    def __init__(self, engine: Engine, bus: EventBus | None, cars: CarDirectory | None = None, *,
                 rearm_kmh: float = 5.0, moving_kmh: float = 5.0, poll_s: float = 2.0) -> None:
        self.engine = engine
        self.cars = cars or CarDirectory(engine)
        self.sink = AlertSink(engine, bus)
        self.rearm_kmh = rearm_kmh
        self.moving_kmh = moving_kmh
        self.poll_s = poll_s
        self._rules: dict[int, Rules] = {}
        self._loaded_at: float | None = None
        self._speeding: set[int] = set()
        self._ignition: dict[int, str] = {}
        self._nights: dict[int, str] = {}

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or self._loaded_at is None or now - self._loaded_at >= self.poll_s:
            with self.engine.connect() as conn:
                self._rules = repo.all_rules(conn)
            self._loaded_at = now

    def on_committed(self, result: WriteResult) -> None:
        self.refresh()
        if not self._rules:
            return
        self.cars.prefetch(m.vehicle_id for m in result.new_telemetry if m.vehicle_id in self._rules)
        for msg in sorted(result.new_telemetry, key=lambda m: m.ts_ms):
            rules = self._rules.get(msg.vehicle_id)
            if rules is None:
                continue
            speed_row = msg.samples.get(SPEED)
            speed = speed_row[_NUM] if speed_row is not None else None
            ignition_row = msg.samples.get(IGNITION)
            if ignition_row is not None and ignition_row[_TEXT] is not None:
                self._ignition[msg.vehicle_id] = ignition_row[_TEXT]
            if speed is not None and rules.speed_limit_kmh is not None:
                self._check_speed(msg.vehicle_id, msg.seq, msg.ts_ms, speed, rules.speed_limit_kmh)
            self._check_curfew(msg.vehicle_id, msg.ts_ms, speed, rules)
        self.sink.flush()

    def _check_speed(self, vehicle_id: int, seq: int, ts_ms: int, speed: float, limit: float) -> None:
        if vehicle_id in self._speeding:
            if speed <= limit - self.rearm_kmh:
                self._speeding.discard(vehicle_id)
            return
        if speed > limit:
            self._speeding.add(vehicle_id)
            vin = self.cars.vin(vehicle_id)
            self.sink.add(DomainEvent(SPEED_LIMIT_EXCEEDED, vin, vehicle_id, ts_ms,
                                      f"{vin}:{SPEED_LIMIT_EXCEEDED}:{seq}",
                                      {"speed_kmh": speed, "limit_kmh": limit}))

    def _check_curfew(self, vehicle_id: int, ts_ms: int, speed: float | None, rules: Rules) -> None:
        moving = speed is not None and speed > self.moving_kmh
        used = moving or self._ignition.get(vehicle_id) in IGNITION_ON
        if not used:
            return
        night = curfew_night(rules, ts_ms)
        if night is None or self._nights.get(vehicle_id) == night:
            return
        self._nights[vehicle_id] = night
        vin = self.cars.vin(vehicle_id)
        self.sink.add(DomainEvent(CURFEW_VIOLATED, vin, vehicle_id, ts_ms, f"{vin}:{CURFEW_VIOLATED}:{night}",
                                  {"night": night, "timezone": rules.timezone,
                                   "curfew_start_min": rules.curfew_start_min,
                                   "curfew_end_min": rules.curfew_end_min}))
