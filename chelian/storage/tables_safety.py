"""Safety and security tables: crash incidents, roadside tickets, theft reports, who to tell,
and the notification outbox.

Kept out of storage/tables.py so the safety capability owns its schema; they share the one
`metadata` (and naming convention), so migrations and tests see a single schema. Every row
that a car's message can cause carries a unique `key` derived from (VIN, seq): a redelivered
message, or two detectors reacting to one crash, can never create a second row.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from chelian.storage.tables import BigId, metadata

emergency_contacts = Table(
    "emergency_contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("email", String(320), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)
"""Per owner, not per car: the people to tell when any of their cars crashes."""

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("url", String(2048), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("events", JSON, nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_ms", BigInteger, nullable=False),
)
"""Where an owner wants safety events POSTed; `events` is a list of names or ["*"]."""

incidents = Table(
    "incidents",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(128), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("cause", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("detected_ms", BigInteger, nullable=False),
    Column("opened_ms", BigInteger, nullable=False),
    Column("grace_until_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("speed_before_kmh", Float, nullable=True),
    Column("heading", Float, nullable=True),
    Column("occupants", Integer, nullable=True),
    Column("data", JSON, nullable=False),
    Index("ix_incidents_vehicle_detected", "vehicle_id", "detected_ms"),
)
"""One row per crash (not per message about it): later signals inside the crash window add
notes to the same incident."""

incident_updates = Table(
    "incident_updates",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "incident_id",
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("ts_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("note", Text, nullable=True),
)
"""The incident's history: every transition and note, with who made it."""

roadside_tickets = Table(
    "roadside_tickets",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(128), nullable=False, unique=True),
    Column("source", String(8), nullable=False),
    Column("problem", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee", String(128), nullable=True),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("health", JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Index("ix_roadside_tickets_vehicle_created", "vehicle_id", "created_ms"),
)

roadside_updates = Table(
    "roadside_updates",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "ticket_id",
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("roadside_tickets.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("ts_ms", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("assignee", String(128), nullable=True),
    Column("note", Text, nullable=True),
)

theft_reports = Table(
    "theft_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("reported_by", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("reported_ms", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    Column("immobilise_requested_ms", BigInteger, nullable=True),
    Column("immobilise_command_id", String(64), nullable=True),
    Column("recovered_ms", BigInteger, nullable=True),
    Column("recovery_note", Text, nullable=True),
)
"""At most one `active` report per car (enforced by the service); recovered ones stay as history."""

theft_track = Table(
    "theft_track",
    metadata,
    Column("report_id", Integer, ForeignKey("theft_reports.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("speed_kmh", Float, nullable=True),
)
"""Every position the stolen car sent while reported stolen, keyed by its message seq."""

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("target", String(2048), nullable=False),
    Column("subject", String(64), nullable=True, index=True),
    Column("event", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("secret", String(128), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Index("ix_notification_outbox_status_next", "status", "next_attempt_ms"),
)
"""Notifications to send, persisted before any attempt so a restart loses none.

`key` = channel:target-id:event-key, so one event reaches one recipient once however often
it is published; `subject` (e.g. "incident:12") lets a cancelled false alarm withdraw its
still-pending notifications."""
