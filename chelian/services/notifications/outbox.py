"""From safety events to outbox rows: who hears about what, decided in one table.

`Notifier` subscribes to the safety events on the bus. For each it writes one outbox row
per recipient - every active webhook subscription of the car's owner that wants the event,
and the e-mail recipients in `EMAIL_TO` - keyed `channel:recipient:event key`, so a
republished event (or a redelivered message) never notifies anyone twice. It only writes
rows; the worker sends them. An event's `notify_after_ms` (a crash's grace period) becomes
the row's first attempt time and its `subject` lets a cancellation withdraw it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Connection, Engine, select

from chelian.events import EventBus
from chelian.events.bus import DomainEvent
from chelian.services.safety import names as n
from chelian.storage.db import now_ms
from chelian.storage.repositories import notifications as repo
from chelian.storage.tables import users, vehicles

log = logging.getLogger("chelian.notifications")

OWNER: Final = "owner"
CONTACTS: Final = "contacts"

EMAIL_TO: dict[str, tuple[str, ...]] = {
    n.INCIDENT_OPENED: (OWNER, CONTACTS),
    n.INCIDENT_DISPATCHED: (OWNER,),
    n.ROADSIDE_REQUESTED: (OWNER,),
    n.VEHICLE_REPORTED_STOLEN: (OWNER,),
    n.STOLEN_VEHICLE_MOVED: (OWNER,),
    n.UNAUTHORISED_MOVEMENT_DETECTED: (OWNER,),
}
"""Which events are also e-mailed, and to whom; every safety event goes to subscribed webhooks."""

EMAIL_SUBJECT: dict[str, str] = {
    n.INCIDENT_OPENED: "Crash detected: {vin}",
    n.INCIDENT_DISPATCHED: "Help is on the way: {vin}",
    n.ROADSIDE_REQUESTED: "Roadside assistance requested: {vin}",
    n.VEHICLE_REPORTED_STOLEN: "Reported stolen: {vin}",
    n.STOLEN_VEHICLE_MOVED: "Stolen car moving: {vin}",
    n.UNAUTHORISED_MOVEMENT_DETECTED: "Your locked car is moving: {vin}",
}


def webhook_body(event: DomainEvent) -> dict[str, Any]:
    """The JSON every webhook receives (documented in the API description of subscriptions)."""
    data = {k: v for k, v in event.data.items() if k not in ("notify_after_ms", "subject")}
    return {"event": event.name, "key": event.key, "vin": event.vin, "ts_ms": event.ts_ms, "data": data}


def email_text(event: DomainEvent) -> dict[str, str]:
    d = event.data
    lines = [f"Vehicle: {event.vin}", f"Event: {event.name.replace('_', ' ')}"]
    if d.get("latitude") is not None and d.get("longitude") is not None:
        lat, lon = d["latitude"], d["longitude"]
        lines.append(f"Location: {lat:.6f}, {lon:.6f} (https://www.openstreetmap.org/?mlat={lat}&mlon={lon})")
    for key, label in (
        ("speed_before_kmh", "Speed before impact (km/h)"),
        ("heading", "Heading (degrees)"),
        ("occupants", "Occupants"),
        ("problem", "Problem"),
        ("speed_kmh", "Speed (km/h)"),
        ("distance_m", "Moved (m)"),
        ("note", "Note"),
    ):
        if d.get(key) is not None:
            lines.append(f"{label}: {d[key]}")
    return {
        "subject": EMAIL_SUBJECT.get(event.name, "{vin}: " + event.name).format(vin=event.vin),
        "body": "\n".join(lines) + "\n",
    }


class Notifier:
    def __init__(
        self, engine: Engine, wake: Callable[[], None] = lambda: None, clock: Callable[[], int] = now_ms
    ) -> None:
        self.engine = engine
        self.wake = wake
        """Called after new rows are committed (the worker's prompt to look now)."""
        self.clock = clock

    def subscribe(self, bus: EventBus) -> None:
        for name in n.ALL_EVENTS:
            if name != n.CRASH_DETECTED:  # incident_opened tells the same story, with the incident id
                bus.subscribe(name, self.handle)

    def handle(self, event: DomainEvent) -> None:
        """Bus handler: enqueue in a transaction of its own (a no-op if already enqueued)."""
        with self.engine.begin() as conn:
            added = self.enqueue(conn, event)
        if added:
            log.info("notifications_enqueued event=%s vin=%s count=%d", event.name, event.vin, added)
            self.wake()

    def enqueue(self, conn: Connection, event: DomainEvent) -> int:
        """Write `event`'s notifications in the caller's transaction, so a service can store
        what happened and who must hear of it atomically; returns rows added."""
        now = self.clock()
        start = max(now, int(event.data.get("notify_after_ms") or now))
        common = {
            "event": event.name,
            "subject": event.data.get("subject"),
            "next_attempt_ms": start,
            "created_ms": now,
        }
        owner_id, owner_email = conn.execute(
            select(users.c.id, users.c.email)
            .join(vehicles, vehicles.c.owner_id == users.c.id)
            .where(vehicles.c.id == event.vehicle_id)
        ).one()
        rows = [
            {
                **common,
                "key": f"webhook:{s.id}:{event.name}:{event.key}",
                "channel": "webhook",
                "target": s.url,
                "secret": s.secret,
                "payload": webhook_body(event),
            }
            for s in repo.subscriptions_of(conn, owner_id)
            if s.wants(event.name)
        ]
        addresses = self._addresses(conn, owner_id, owner_email, EMAIL_TO.get(event.name, ()))
        rows += [
            {
                **common,
                "key": f"email:{address}:{event.name}:{event.key}",
                "channel": "email",
                "target": address,
                "payload": email_text(event),
            }
            for address in addresses
        ]
        return repo.enqueue(conn, rows)

    @staticmethod
    def _addresses(conn: Any, owner_id: int, owner_email: str, who: tuple[str, ...]) -> list[str]:
        found = [owner_email] if OWNER in who else []
        if CONTACTS in who:
            found += [c.email for c in repo.contacts_of(conn, owner_id) if c.email]
        return list(dict.fromkeys(found))


def payload_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes a webhook receives (and its signature covers)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
