"""Alert event names, and the sink that stores a commit's alerts before announcing them.

Detectors run in the ingest commit thread, so they never write one row per event: they add
events to an `AlertSink`, which stores the whole commit's alerts in one transaction (insert
ignoring repeated idempotency keys, so a detector re-run after a restart cannot duplicate an
alert) and only then publishes them on the bus.

Colleagues' detectors publish `*_detected` events (crash_detected, ...) on the bus;
`record_detected` stores those as alerts too, so one endpoint lists everything about a car.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine, select

from chelian.events import EventBus
from chelian.events.bus import ALL, DomainEvent
from chelian.storage.repositories import alerts as alert_repo
from chelian.storage.tables import vehicles

log = logging.getLogger("chelian.alerts")

GEOFENCE_ENTERED: Final = "geofence_entered"
GEOFENCE_EXITED: Final = "geofence_exited"
SPEED_LIMIT_EXCEEDED: Final = "speed_limit_exceeded"
CURFEW_VIOLATED: Final = "curfew_violated"
DTC_REPORTED: Final = "dtc_reported"
DTC_CLEARED: Final = "dtc_cleared"
MAINTENANCE_DUE: Final = "maintenance_due"
TRIP_STARTED: Final = "trip_started"
TRIP_ENDED: Final = "trip_ended"

ALERT_TYPES: Final = frozenset({GEOFENCE_ENTERED, GEOFENCE_EXITED, SPEED_LIMIT_EXCEEDED, CURFEW_VIOLATED,
                                DTC_REPORTED, MAINTENANCE_DUE})
"""Events kept in the alerts table (trip and dtc_cleared events are facts, not alerts)."""

DETECTED_SUFFIX: Final = "_detected"


class CarDirectory:
    """vehicle_id -> (vin, owner_id), loaded on first sight; ownership changes are rare.

    Detectors call `prefetch` with a commit's cars first, so a fleet's first messages cost one
    query per batch rather than one per car.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cars: dict[int, tuple[str, int]] = {}

    def get(self, vehicle_id: int) -> tuple[str, int]:
        car = self._cars.get(vehicle_id)
        if car is None:
            with self.engine.connect() as conn:
                row = conn.execute(select(vehicles.c.vin, vehicles.c.owner_id)
                                   .where(vehicles.c.id == vehicle_id)).one()
            car = self._cars[vehicle_id] = (row[0], int(row[1]))
        return car

    def prefetch(self, vehicle_ids: Iterable[int]) -> None:
        missing = [v for v in set(vehicle_ids) if v not in self._cars]
        if not missing:
            return
        with self.engine.connect() as conn:
            for vid, vin, owner in conn.execute(select(vehicles.c.id, vehicles.c.vin, vehicles.c.owner_id)
                                                .where(vehicles.c.id.in_(missing))):
                self._cars[vid] = (vin, int(owner))

    def vin(self, vehicle_id: int) -> str:
        return self.get(vehicle_id)[0]

    def owner(self, vehicle_id: int) -> int:
        return self.get(vehicle_id)[1]


@dataclass
class AlertSink:
    """Collects one commit's events; `flush` stores the alerts and then publishes everything."""

    engine: Engine
    bus: EventBus | None
    pending: list[DomainEvent] = field(default_factory=list)

    def add(self, event: DomainEvent) -> None:
        self.pending.append(event)

    def flush(self) -> list[DomainEvent]:
        events, self.pending = self.pending, []
        rows = [(e.vehicle_id, e.name, e.ts_ms, e.key, e.data) for e in events if e.name in ALERT_TYPES]
        if rows:
            with self.engine.begin() as conn:
                alert_repo.record(conn, rows)
        if self.bus is not None:
            for event in events:
                self.bus.publish(event)
        return events


def record_detected(bus: EventBus, engine: Engine):  # type: ignore[no-untyped-def]
    """Store every `*_detected` event published by other capabilities as an alert; returns
    the unsubscribe function. Such events are rare (a crash, a theft), so a direct write is
    cheaper than a queue."""

    def handler(event: DomainEvent) -> None:
        if event.name.endswith(DETECTED_SUFFIX):
            with engine.begin() as conn:
                alert_repo.record(conn, [(event.vehicle_id, event.name, event.ts_ms, event.key,
                                          dict(event.data))])

    return bus.subscribe(ALL, handler)
