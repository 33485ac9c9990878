"""Incidents, roadside tickets, stolen reports, emergency contacts and webhook subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.storage.repositories.incidents import Incident, Update
from chelian.storage.repositories.notifications import Contact, Subscription
from chelian.storage.repositories.roadside import Ticket, TicketUpdate
from chelian.storage.repositories.theft import TheftReport, TrackPoint


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else ms_to_datetime(ms)


class NoteIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class NoteRequired(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class HistoryEntry(BaseModel):
    at: datetime
    status: str
    actor: str
    note: str | None
    assignee: str | None = None

    @classmethod
    def of(cls, u: Update | TicketUpdate) -> HistoryEntry:
        return cls(
            at=ms_to_datetime(u.ts_ms),
            status=u.status,
            actor=u.actor,
            note=u.note,
            assignee=getattr(u, "assignee", None),
        )


class IncidentPublic(BaseModel):
    id: int
    kind: str
    cause: str = Field(description="airbag | impact | car_event")
    status: Literal["open", "acknowledged", "dispatched", "closed", "cancelled"]
    detected_at: datetime
    opened_at: datetime
    cancellable_until: datetime = Field(description="End of the grace period for cancelling a false alarm")
    latitude: float | None
    longitude: float | None
    speed_before_kmh: float | None
    heading: float | None
    occupants: int | None
    history: list[HistoryEntry] | None = None

    @classmethod
    def of(cls, i: Incident, history: list[Update] | None = None) -> IncidentPublic:
        return cls(
            id=i.id,
            kind=i.kind,
            cause=i.cause,
            status=i.status,
            detected_at=ms_to_datetime(i.detected_ms),
            opened_at=ms_to_datetime(i.opened_ms),
            cancellable_until=ms_to_datetime(i.grace_until_ms),
            latitude=i.latitude,
            longitude=i.longitude,
            speed_before_kmh=i.speed_before_kmh,
            heading=i.heading,
            occupants=i.occupants,
            history=None if history is None else [HistoryEntry.of(u) for u in history],
        )


class IncidentsPublic(BaseModel):
    vin: str
    data: list[IncidentPublic]


Problem = Literal["flat_tyre", "battery", "fuel", "lockout", "tow", "other"]


class RoadsideCreate(BaseModel):
    problem: Problem
    latitude: float | None = Field(
        default=None, ge=-90, le=90, description="Default: the car's last position"
    )
    longitude: float | None = Field(default=None, ge=-180, le=180)
    note: str | None = Field(default=None, max_length=2000)


class RoadsideAction(BaseModel):
    note: str | None = Field(default=None, max_length=2000)
    assignee: str | None = Field(
        default=None, max_length=128, description="Who is coming (required to assign)"
    )


class TicketPublic(BaseModel):
    id: int
    source: Literal["car", "owner"]
    problem: str
    status: Literal["open", "assigned", "en_route", "resolved", "cancelled"]
    assignee: str | None
    latitude: float | None
    longitude: float | None
    health: dict[str, Any] = Field(
        description="Last known battery, tyres, fuel/charge and DTCs: path -> {value, ts_ms}"
    )
    created_at: datetime
    updated_at: datetime
    history: list[HistoryEntry] | None = None

    @classmethod
    def of(cls, t: Ticket, history: list[TicketUpdate] | None = None) -> TicketPublic:
        return cls(
            id=t.id,
            source=t.source,
            problem=t.problem,
            status=t.status,
            assignee=t.assignee,
            latitude=t.latitude,
            longitude=t.longitude,
            health=t.health,
            created_at=ms_to_datetime(t.created_ms),
            updated_at=ms_to_datetime(t.updated_ms),
            history=None if history is None else [HistoryEntry.of(u) for u in history],
        )


class TicketsPublic(BaseModel):
    vin: str
    data: list[TicketPublic]


class TrackPointPublic(BaseModel):
    seq: int
    ts: datetime
    latitude: float
    longitude: float
    speed_kmh: float | None


class StolenReportPublic(BaseModel):
    id: int
    status: Literal["active", "recovered"]
    reported_at: datetime
    note: str | None
    immobilise_requested_at: datetime | None
    immobilise_command_id: str | None = Field(description="Follow it under /commands/{id}")
    tracking_command_id: str | None = Field(
        default=None, description="The set_tracking command that made the car report its position at "
        "high rate (None: no command relay here, or the car cannot take commands)")
    tracking_stop_command_id: str | None = Field(
        default=None, description="The set_tracking command (duration_s 0) sent on recovery")
    recovered_at: datetime | None
    recovery_note: str | None
    track: list[TrackPointPublic] | None = None

    @classmethod
    def of(cls, r: TheftReport, track: list[TrackPoint] | None = None,
           tracking: tuple[str | None, str | None] = (None, None)) -> StolenReportPublic:
        return cls(
            id=r.id,
            status=r.status,
            reported_at=ms_to_datetime(r.reported_ms),
            note=r.note,
            immobilise_requested_at=_at(r.immobilise_requested_ms),
            immobilise_command_id=r.immobilise_command_id,
            tracking_command_id=tracking[0],
            tracking_stop_command_id=tracking[1],
            recovered_at=_at(r.recovered_ms),
            recovery_note=r.recovery_note,
            track=None
            if track is None
            else [
                TrackPointPublic(
                    seq=p.seq,
                    ts=ms_to_datetime(p.ts_ms),
                    latitude=p.latitude,
                    longitude=p.longitude,
                    speed_kmh=p.speed_kmh,
                )
                for p in track
            ],
        )


class ContactCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)


class ContactPublic(BaseModel):
    id: int
    name: str
    email: str | None
    phone: str | None

    @classmethod
    def of(cls, c: Contact) -> ContactPublic:
        return cls(id=c.id, name=c.name, email=c.email, phone=c.phone)


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2048, examples=["https://example.com/chelian"])
    events: list[str] = Field(default=["*"], description="Event names, or ['*'] for all safety events")


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    secret: str | None = Field(
        default=None,
        description="Only in the answer to creating it: verify "
        "X-Chelian-Signature (t=<unix s>,v1=<hex HMAC-SHA256 of "
        "'<t>.<body>'>) with it",
    )

    @classmethod
    def of(cls, s: Subscription, *, with_secret: bool = False) -> WebhookPublic:
        return cls(
            id=s.id, url=s.url, events=s.events, active=s.active, secret=s.secret if with_secret else None
        )
