"""One in-process event bus with snake_case, past-tense event names.

Detectors in the ingest path publish (`crash_detected`, `geofence_exited`, ...);
notifications, webhooks and later the developer platform subscribe. Every event carries an
idempotency `key` derived from what caused it (e.g. the VIN and message seq), so a consumer
that persists what it has handled (an outbox) can drop a repeat safely.

Handlers run synchronously in the publisher's thread: a handler that does I/O must hand the
work to its own queue or outbox instead of blocking ingest.

Example:
    bus = EventBus()
    bus.subscribe("crash_detected", lambda e: print(e.vin, e.data))
    bus.publish(DomainEvent("crash_detected", vin="1M8...", vehicle_id=7, ts_ms=..., key="1M8...:42"))
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger("chelian.events")

ALL: Final = "*"

Handler = Callable[["DomainEvent"], None]


@dataclass(frozen=True, slots=True)
class DomainEvent:
    name: str
    vin: str
    vehicle_id: int
    ts_ms: int
    key: str
    """Idempotency key: the same cause always yields the same key."""
    data: dict[str, Any] = field(default_factory=dict)


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call `handler` for every event called `name` (or every event for "*"); returns an
        unsubscribe function."""
        with self._lock:
            self._handlers[name].append(handler)

        def unsubscribe() -> None:
            with self._lock:
                self._handlers[name].remove(handler)

        return unsubscribe

    def publish(self, event: DomainEvent) -> None:
        with self._lock:
            handlers = [*self._handlers.get(event.name, ()), *self._handlers.get(ALL, ())]
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # one bad subscriber must not stop the others or ingest
                log.exception("event_handler_failed event=%s vin=%s", event.name, event.vin)
