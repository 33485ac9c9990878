"""Crash incidents: one per car per crash, a grace period for false alarms, and a lifecycle.

    open --acknowledge--> acknowledged --dispatch--> dispatched --close--> closed
      \\--cancel (car or owner, within the grace period)--> cancelled

Notifications about a new incident are enqueued at once but not sent before the grace
period ends (`notify_after_ms` on the event): a car that cancels in time (its
`crash_cancelled` event, or the owner in the API) withdraws them, so nobody is called out
for a false alarm. Each transition is a compare-and-set, so two people acknowledging at
once produce one transition and one event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from chelian.errors import ConflictError, NotFoundError
from chelian.events.bus import DomainEvent
from chelian.services.safety import names as n
from chelian.services.safety.announce import Announcer
from chelian.storage.db import now_ms
from chelian.storage.repositories import incidents as repo
from chelian.storage.repositories import notifications
from chelian.storage.repositories.incidents import Incident
from chelian.storage.tables import latest_state

log = logging.getLogger("chelian.safety.incidents")

OPEN, ACKNOWLEDGED, DISPATCHED, CLOSED, CANCELLED = (
    "open",
    "acknowledged",
    "dispatched",
    "closed",
    "cancelled",
)

TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "acknowledge": (frozenset({OPEN}), ACKNOWLEDGED, n.INCIDENT_ACKNOWLEDGED),
    "dispatch": (frozenset({OPEN, ACKNOWLEDGED}), DISPATCHED, n.INCIDENT_DISPATCHED),
    "close": (frozenset({OPEN, ACKNOWLEDGED, DISPATCHED}), CLOSED, n.INCIDENT_CLOSED),
    "cancel": (frozenset({OPEN}), CANCELLED, n.INCIDENT_CANCELLED),
}
"""action -> (states it may start from, state it leads to, event it announces)."""

_FALLBACK = {
    "latitude": n.LATITUDE,
    "longitude": n.LONGITUDE,
    "heading": n.HEADING,
    "speed_before_kmh": n.SPEED,
}


@dataclass(frozen=True, slots=True)
class Detection:
    vehicle_id: int
    seq: int
    ts_ms: int
    cause: str
    """airbag | impact | car_event"""
    speed_before_kmh: float | None
    latitude: float | None
    longitude: float | None
    heading: float | None
    occupants: int | None
    detail: dict[str, Any]


def subject(incident_id: int) -> str:
    return f"incident:{incident_id}"


class IncidentService:
    def __init__(
        self,
        engine: Engine,
        announcer: Announcer,
        *,
        grace_ms: int = 30_000,
        window_ms: int = 120_000,
        outbox: Callable[[Connection, DomainEvent], int] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        """Notifier.enqueue: a new incident's notifications are written in the incident's own
        transaction, so no crash between storing it and announcing it can lose them."""
        self.announcer = announcer
        self.grace_ms = grace_ms
        self.window_ms = window_ms
        """Crash signals from one car within this span of each other are one crash."""
        self.clock = clock

    def open_crash(self, d: Detection) -> Incident | None:
        """Open an incident for `d`, or note it on the crash it belongs to; the new incident or None."""
        vin, now = self.announcer.vin(d.vehicle_id), self.clock()
        # Telemetry and events count their seq separately: the channel is part of the cause.
        cause_key = f"crash:{vin}:{'e' if d.cause == 'car_event' else 't'}{d.seq}"
        with self.engine.begin() as conn:
            existing = repo.in_window(conn, d.vehicle_id, d.ts_ms, self.window_ms)
            if existing is not None and existing.key == cause_key:
                return None  # the same message again (two ingest workers each found it)
            if existing is not None:
                repo.add_update(
                    conn,
                    existing.id,
                    now,
                    existing.status,
                    "car",
                    f"further crash signal: {d.cause} (message {d.seq})",
                )
                return None
            known = {
                **self._last_known(conn, d.vehicle_id),
                **{k: v for k, v in asdict(d).items() if v is not None},
            }
            incident = repo.insert_incident(
                conn,
                dict(
                    vehicle_id=d.vehicle_id,
                    key=cause_key,
                    kind="crash",
                    cause=d.cause,
                    status=OPEN,
                    detected_ms=d.ts_ms,
                    opened_ms=now,
                    grace_until_ms=now + self.grace_ms,
                    updated_ms=now,
                    latitude=known.get("latitude"),
                    longitude=known.get("longitude"),
                    speed_before_kmh=known.get("speed_before_kmh"),
                    heading=known.get("heading"),
                    occupants=d.occupants,
                    data={"detail": d.detail, "seq": d.seq},
                ),
            )
            if incident is None:
                return None
            repo.add_update(conn, incident.id, now, OPEN, "car", f"crash detected ({d.cause})")
            data = self.describe(incident)
            opened = self.announcer.event(
                n.INCIDENT_OPENED,
                d.vehicle_id,
                d.ts_ms,
                f"incident:{incident.id}:opened",
                {**data, "notify_after_ms": incident.grace_until_ms},
            )
            if self.outbox is not None:
                self.outbox(conn, opened)
        log.warning("crash_detected vin=%s incident=%d cause=%s", vin, incident.id, d.cause)
        self.announcer.publish(n.CRASH_DETECTED, d.vehicle_id, d.ts_ms, cause_key, data)
        self.announcer.bus.publish(opened)
        return incident

    def _last_known(self, conn: Any, vehicle_id: int) -> dict[str, float]:
        """Where the car was, from latest state, for what the detection itself did not carry."""
        rows = conn.execute(
            select(latest_state.c.path, latest_state.c.value_num).where(
                latest_state.c.vehicle_id == vehicle_id, latest_state.c.path.in_(list(_FALLBACK.values()))
            )
        )
        by_path = dict(rows.all())
        return {k: by_path[p] for k, p in _FALLBACK.items() if by_path.get(p) is not None}

    def cancel_by_car(self, vehicle_id: int, seq: int, ts_ms: int) -> Incident | None:
        """The car's `crash_cancelled`: cancels its newest open incident still in its grace period."""
        with self.engine.connect() as conn:
            candidates = [
                i
                for i in repo.for_vehicle(conn, vehicle_id, 5, status=OPEN)
                if i.grace_until_ms >= self.clock()
            ]
        if not candidates:
            log.info(
                "crash_cancel_ignored vehicle_id=%d seq=%d: nothing open within its grace period",
                vehicle_id,
                seq,
            )
            return None
        return self.transition(
            vehicle_id, candidates[0].id, "cancel", "car", f"cancelled by the car (message {seq})"
        )

    def transition(
        self, vehicle_id: int, incident_id: int, action: str, actor: str, note: str | None = None
    ) -> Incident:
        allowed_from, status, event = TRANSITIONS[action]
        now = self.clock()
        with self.engine.begin() as conn:
            incident = repo.get(conn, vehicle_id, incident_id)
            if incident is None:
                raise NotFoundError(f"no incident {incident_id} for this car")
            if action == "cancel" and incident.grace_until_ms < now:
                raise ConflictError(
                    "the grace period for cancelling is over: close the incident with a note instead"
                )
            if not repo.set_status(conn, incident_id, allowed_from, status, now):
                raise ConflictError(f"cannot {action} an incident that is {incident.status}")
            repo.add_update(conn, incident_id, now, status, actor, note)
            if action == "cancel":
                notifications.cancel_subject(conn, subject(incident_id))
            incident = repo.get(conn, vehicle_id, incident_id)
        assert incident is not None
        self.announcer.publish(
            event,
            vehicle_id,
            now,
            f"incident:{incident_id}:{status}",
            {**self.describe(incident), "note": note, "actor": actor},
        )
        return incident

    def add_note(self, vehicle_id: int, incident_id: int, actor: str, note: str) -> Incident:
        now = self.clock()
        with self.engine.begin() as conn:
            incident = repo.get(conn, vehicle_id, incident_id)
            if incident is None:
                raise NotFoundError(f"no incident {incident_id} for this car")
            repo.add_update(conn, incident_id, now, incident.status, actor, note)
        self.announcer.publish(
            n.INCIDENT_NOTE_ADDED,
            vehicle_id,
            now,
            f"incident:{incident_id}:note:{now}:{actor}",
            {**self.describe(incident), "note": note, "actor": actor},
        )
        return incident

    def describe(self, i: Incident) -> dict[str, Any]:
        """What notifications say about an incident (also the webhook payload's `data`)."""
        return {
            "incident_id": i.id,
            "subject": subject(i.id),
            "status": i.status,
            "cause": i.cause,
            "detected_ms": i.detected_ms,
            "latitude": i.latitude,
            "longitude": i.longitude,
            "speed_before_kmh": i.speed_before_kmh,
            "heading": i.heading,
            "occupants": i.occupants,
            "grace_until_ms": i.grace_until_ms,
        }
