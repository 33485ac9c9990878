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
    def build(cls, engine: Engine, bus: EventBus | None) -> RulesServices:
        cars = CarDirectory(engine)
        observers: list[CommitObserver] = [
            GeofenceDetector(engine, bus, cars),
            DrivingRulesDetector(engine, bus, cars),
            DiagnosticsDetector(engine, bus, cars),
            TripDetector(engine, bus, cars),
        ]
        unsubscribe = record_detected(bus, engine) if bus is not None else (lambda: None)
        return cls(observers, unsubscribe)
