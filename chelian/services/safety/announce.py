"""Publishing safety events: every event names its car by VIN, looked up once per car."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, select

from chelian.events import EventBus
from chelian.events.bus import DomainEvent
from chelian.storage.tables import vehicles


class Announcer:
    def __init__(self, engine: Engine, bus: EventBus) -> None:
        self.engine = engine
        self.bus = bus
        self._vins: dict[int, str] = {}
        self._lock = threading.Lock()

    def vin(self, vehicle_id: int) -> str:
        with self._lock:
            known = self._vins.get(vehicle_id)
        if known is None:  # a VIN never changes, so the cache needs no expiry
            with self.engine.connect() as conn:
                known = conn.execute(select(vehicles.c.vin).where(vehicles.c.id == vehicle_id)).scalar_one()
            with self._lock:
                self._vins[vehicle_id] = known
        return known

    def event(self, name: str, vehicle_id: int, ts_ms: int, key: str, data: dict[str, Any]) -> DomainEvent:
        return DomainEvent(name, self.vin(vehicle_id), vehicle_id, ts_ms, key, data)

    def publish(self, name: str, vehicle_id: int, ts_ms: int, key: str, data: dict[str, Any]) -> None:
        self.bus.publish(self.event(name, vehicle_id, ts_ms, key, data))
