"""Crash detection from telemetry alone, and the car's own crash / cancel events.

Two telemetry rules, evaluated per message as it is committed (so within the second the
message arrives, not by a periodic scan):

* an airbag (`Vehicle.Cabin.Seat.Row*.*.Airbag.IsDeployed`) turning true;
* an impact: longitudinal or lateral acceleration beyond `accel_threshold` (default 40 m/s^2,
  about 4 g: hard braking tops out near 1 g, a pothole shows a short spike but the car keeps
  going) followed within `collapse_ms` by the speed collapsing from at least `min_speed_kmh`
  to `stopped_kmh`. A spike without the collapse expires silently, and so does a collapse
  without a spike (a hard but safe stop).

State is per car and in memory (recent speeds, last position, pending spike): a restart
forgets at most a few seconds of context. With several ingest workers, an impact whose spike
and collapse reached different workers is found from the stored telemetry (`CrashObserver`).
Detections go to IncidentService, which keeps one incident per car per crash window however
many messages report the crash.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chelian.ingest.batch import EventRow, TelemetryRows, WriteResult
from chelian.services.safety import names as n
from chelian.services.safety.geo import num
from chelian.services.safety.history import StoredTelemetry
from chelian.services.safety.incidents import Detection, IncidentService

log = logging.getLogger("chelian.safety.crash")

AIRBAG = re.compile(r"^Vehicle\.Cabin\.Seat\.Row\d+\.[A-Za-z]+\.Airbag\.IsDeployed$")
OCCUPIED = re.compile(r"^Vehicle\.Cabin\.Seat\.Row\d+\.[A-Za-z]+\.IsOccupied$")
SPEED_MEMORY_MS = 5_000
AIRBAG_LOOKBACK_MS = 3_600_000
"""How far back a worker looks for an airbag the car already reported deployed (a deployed
airbag is re-sent with every heartbeat, once a minute)."""


@dataclass(frozen=True, slots=True)
class CrashRules:
    accel_threshold: float = 40.0
    """m/s^2 on either horizontal axis."""
    min_speed_kmh: float = 20.0
    """The car must have been going at least this fast just before the spike."""
    stopped_kmh: float = 5.0
    collapse_ms: int = 2_000
    """How long after the spike the speed may take to collapse."""
    before_ms: int = 3_000
    """How far back 'speed before impact' looks."""


@dataclass(slots=True)
class _Car:
    speeds: deque[tuple[int, float]] = field(default_factory=deque)
    latitude: float | None = None
    longitude: float | None = None
    heading: float | None = None
    airbags: dict[str, bool] = field(default_factory=dict)
    occupied: dict[str, bool] = field(default_factory=dict)
    spike: tuple[int, int, float, float] | None = None
    """(seq, ts_ms, peak acceleration, speed before) of an unresolved acceleration spike."""


class CrashDetector:
    """Pure and synchronous: feed it one car's messages in order, it returns detections."""

    def __init__(self, rules: CrashRules = CrashRules()) -> None:
        self.rules = rules
        self._cars: dict[int, _Car] = {}

    def feed(self, row: TelemetryRows) -> Detection | None:
        car = self._cars.setdefault(row.vehicle_id, _Car())
        deployed = self._remember(car, row)
        speed_before = self._speed_before(car, row.ts_ms)
        speed = num(row, n.SPEED)
        if speed is not None:
            car.speeds.append((row.ts_ms, speed))
            while car.speeds and car.speeds[0][0] < row.ts_ms - SPEED_MEMORY_MS:
                car.speeds.popleft()
        if deployed:
            car.spike = None
            return self._detection(car, row, "airbag", speed_before, {"airbags": deployed})
        return self._impact(car, row, speed, speed_before)

    def _remember(self, car: _Car, row: TelemetryRows) -> list[str]:
        """Update position/seat memory; return the airbags that turned true in this message."""
        for path, attr in ((n.LATITUDE, "latitude"), (n.LONGITUDE, "longitude"), (n.HEADING, "heading")):
            v = num(row, path)
            if v is not None:
                setattr(car, attr, v)
        deployed = []
        for path, sample in row.samples.items():
            if AIRBAG.match(path):
                now_true = sample[4] == 1.0
                if now_true and not car.airbags.get(path, False):
                    deployed.append(path)
                car.airbags[path] = now_true
            elif OCCUPIED.match(path):
                car.occupied[path] = sample[4] == 1.0
        return deployed

    def _speed_before(self, car: _Car, ts_ms: int) -> float | None:
        recent = [s for t, s in car.speeds if ts_ms - self.rules.before_ms <= t <= ts_ms]
        return max(recent) if recent else None

    def _impact(
        self, car: _Car, row: TelemetryRows, speed: float | None, speed_before: float | None
    ) -> Detection | None:
        r = self.rules
        accel = max(
            (abs(a) for a in (num(row, n.ACCEL_LONGITUDINAL), num(row, n.ACCEL_LATERAL)) if a is not None),
            default=0.0,
        )
        if accel >= r.accel_threshold and car.spike is None:
            car.spike = (
                row.seq,
                row.ts_ms,
                accel,
                speed_before if speed_before is not None else (speed or 0.0),
            )
        if car.spike is None:
            return None
        seq, spike_ms, peak, before = car.spike
        if row.ts_ms > spike_ms + r.collapse_ms:
            car.spike = None  # the car kept going: a pothole, a kerb, a dropped phone
            return None
        if speed is not None and speed <= r.stopped_kmh and before >= r.min_speed_kmh:
            car.spike = None
            return self._detection(
                car,
                row,
                "impact",
                before,
                {"peak_acceleration": peak, "spike_seq": seq, "spike_ts_ms": spike_ms},
            )
        return None

    def _detection(
        self, car: _Car, row: TelemetryRows, cause: str, speed_before: float | None, detail: dict[str, Any]
    ) -> Detection:
        occupants = sum(car.occupied.values()) if car.occupied else None
        return Detection(
            row.vehicle_id,
            row.seq,
            row.ts_ms,
            cause,
            speed_before,
            car.latitude,
            car.longitude,
            car.heading,
            occupants,
            detail,
        )


def detection_from_event(event: EventRow) -> Detection:
    """The car's own `crash` event: its data may carry what it knows (all optional)."""
    d = event.data if isinstance(event.data, dict) else {}

    def f(*keys: str) -> float | None:
        for k in keys:
            if isinstance(d.get(k), int | float) and not isinstance(d.get(k), bool):
                return float(d[k])
        return None

    occupants = d.get("occupants")
    return Detection(
        event.vehicle_id,
        event.seq,
        event.ts_ms,
        "car_event",
        f("speed_before", "speed"),
        f("lat", "latitude"),
        f("lon", "longitude"),
        f("heading"),
        occupants if isinstance(occupants, int) and not isinstance(occupants, bool) else None,
        {"event_type": event.type, **{k: v for k, v in d.items() if k in ("severity", "source")}},
    )


class CrashObserver:
    """Ingest commit observer: telemetry and crash events in, incidents out.

    With `stored` (the platform passes it), an impact split across ingest workers is still
    found: a message that may be one half of an impact (a spike, or a low speed this worker
    cannot judge because it did not see every earlier message of the car) makes the
    observer replay the car's stored window through fresh rules. It reads after its own
    commit, so of two workers holding the two halves, the one that commits last sees both.
    """

    def __init__(self, incidents: IncidentService, rules: CrashRules = CrashRules(),
                 stored: StoredTelemetry | None = None) -> None:
        self.incidents = incidents
        self.detector = CrashDetector(rules)
        self.stored = stored
        self._runs: dict[int, tuple[int, int]] = {}
        """vehicle id -> (last seq seen here, ts since when every seq was seen here)."""

    def on_committed(self, result: WriteResult) -> None:
        for row in sorted(result.new_telemetry, key=lambda m: (m.vehicle_id, m.ts_ms, m.seq)):
            detection = self.detector.feed(row)
            if detection is not None and self._deployed_before(row, detection):
                detection = None
            if detection is not None:
                self.incidents.open_crash(detection)
            elif self.stored is not None and self._half_of_an_impact(row):
                self._replay(row)
        for event in result.new_events:
            if event.type in n.CAR_CRASH_TYPES:
                self.incidents.open_crash(detection_from_event(event))
            elif event.type == n.CAR_CRASH_CANCELLED:
                self.incidents.cancel_by_car(event.vehicle_id, event.seq, event.ts_ms)

    def _deployed_before(self, row: TelemetryRows, detection: Detection) -> bool:
        """Airbags this worker sees turn true that the car had already reported deployed (to
        another worker, or before a restart): no new crash. The stored telemetry decides."""
        if self.stored is None or detection.cause != "airbag":
            return False
        deployed = detection.detail.get("airbags", [])
        stored = self.stored
        if deployed and all(stored.previous(row, path, AIRBAG_LOOKBACK_MS) in (True, 1) for path in deployed):
            log.info("airbag_already_deployed vehicle_id=%d seq=%d", row.vehicle_id, row.seq)
            return True
        return False

    def _half_of_an_impact(self, row: TelemetryRows) -> bool:
        """Could `row` complete an impact whose other half this worker did not see?"""
        last = self._runs.get(row.vehicle_id)
        since = last[1] if last is not None and row.seq == last[0] + 1 else row.ts_ms
        self._runs[row.vehicle_id] = (row.seq, since)
        r = self.detector.rules
        accel = max((abs(a) for a in (num(row, n.ACCEL_LONGITUDINAL), num(row, n.ACCEL_LATERAL))
                     if a is not None), default=0.0)
        if accel >= r.accel_threshold:
            return True  # the collapse may go to another worker, which may have committed first
        speed = num(row, n.SPEED)
        unseen_before = since > row.ts_ms - r.collapse_ms - r.before_ms
        return speed is not None and speed <= r.stopped_kmh and unseen_before

    def _replay(self, row: TelemetryRows) -> None:
        assert self.stored is not None
        r = self.detector.rules
        replay = CrashDetector(r)
        for stored in self.stored.window(row.vehicle_id, row.ts_ms - r.collapse_ms - r.before_ms,
                                         row.ts_ms + r.collapse_ms):
            found = replay.feed(stored)
            if found is not None and found.cause == "impact":  # airbags: whoever sees them acts
                log.info("crash_found_in_stored_window vehicle_id=%d seq=%d", row.vehicle_id, found.seq)
                self.incidents.open_crash(found)
                return
