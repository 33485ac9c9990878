"""The rules capabilities as the Platform wires them: four ingest observers and one bus hook.

Geofences, driving rules (speed, curfew), diagnostics and trips share one `CarDirectory`
(vehicle id -> VIN, owner) so a car is looked up once. `record_detected` stores colleagues'
`*_detected` events as alerts. Everything is built after migrations ran, because each
detector loads its persisted state (inside fences, open trips) on construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from chelian.config import Settings
from chelian.events import EventBus
from chelian.ingest.processor import CommitObserver
from chelian.services.diagnostics.detector import DiagnosticsDetector
from chelian.services.geofences.alerts import CarDirectory, record_detected
from chelian.services.geofences.detector import GeofenceDetector
from chelian.services.geofences.driving import DrivingRulesDetector
from chelian.services.trips.detector import TripDetector


@dataclass
class RulesServices:
    observers: list[CommitObserver]
    unsubscribe: Callable[[], None]

    @classmethod
    def build(cls, engine: Engine, bus: EventBus | None, settings: Settings | None = None) -> RulesServices:
        """`settings` carries the operator's thresholds (None: the documented defaults)."""
        s = settings or Settings.model_construct()
        cars = CarDirectory(engine)
        observers: list[CommitObserver] = [
            GeofenceDetector(engine, bus, cars, margin_m=s.geofence_margin_m,
                             confirm_fixes=s.geofence_confirm_fixes),
            DrivingRulesDetector(engine, bus, cars),
            DiagnosticsDetector(engine, bus, cars),
            TripDetector(engine, bus, cars, moving_kmh=s.trip_moving_kmh, idle_end_s=s.trip_idle_end_s,
                         gap_s=s.trip_gap_s, harsh_braking_ms2=s.trip_harsh_braking_ms2,
                         harsh_acceleration_ms2=s.trip_harsh_acceleration_ms2,
                         harsh_rearm_ms2=s.trip_harsh_rearm_ms2),
        ]
        unsubscribe = record_detected(bus, engine) if bus is not None else (lambda: None)
        return cls(observers, unsubscribe)
