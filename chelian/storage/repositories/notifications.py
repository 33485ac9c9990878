"""Who to tell (emergency contacts, webhook subscriptions) and the notification outbox.

The outbox is the only way a notification leaves chelian: rows are written first, then a
worker sends them, so a crash or restart between "decided to notify" and "sent" loses
nothing; the unique `key` makes enqueueing the same notification twice a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from chelian.storage.tables_safety import emergency_contacts, notification_outbox, webhook_subscriptions

PENDING, SENT, FAILED, CANCELLED = "pending", "sent", "failed", "cancelled"


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    owner_id: int
    name: str
    email: str | None
    phone: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    owner_id: int
    url: str
    secret: str
    events: list[str]
    active: bool
    created_ms: int

    def wants(self, event: str) -> bool:
        return self.active and ("*" in self.events or event in self.events)


@dataclass(frozen=True, slots=True)
class Outgoing:
    id: int
    key: str
    channel: str
    target: str
    subject: str | None
    event: str
    payload: dict[str, Any]
    secret: str | None
    status: str
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    created_ms: int
    sent_ms: int | None


def insert_ignoring_duplicates(conn: Connection, table: Any, rows: list[dict[str, Any]], *key: str) -> int:
    """INSERT ... ON CONFLICT (key columns) DO NOTHING on either dialect; returns rows inserted."""
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # RETURNING, because neither driver reports a reliable rowcount for INSERT.
    stmt = dialect.insert(table).values(rows).on_conflict_do_nothing(index_elements=list(key))
    return len(conn.execute(stmt.returning(table.c[key[0]])).all())


# --- contacts ----------------------------------------------------------------------------


def add_contact(
    conn: Connection, owner_id: int, name: str, email: str | None, phone: str | None, now: int
) -> Contact:
    cid = conn.execute(
        insert(emergency_contacts)
        .values(owner_id=owner_id, name=name, email=email, phone=phone, created_ms=now)
        .returning(emergency_contacts.c.id)
    ).scalar_one()
    return Contact(cid, owner_id, name, email, phone, now)


def contacts_of(conn: Connection, owner_id: int) -> list[Contact]:
    rows = conn.execute(
        select(emergency_contacts)
        .where(emergency_contacts.c.owner_id == owner_id)
        .order_by(emergency_contacts.c.id)
    )
    return [Contact(*r) for r in rows]


def delete_contact(conn: Connection, owner_id: int, contact_id: int) -> bool:
    t = emergency_contacts
    return conn.execute(delete(t).where(t.c.id == contact_id, t.c.owner_id == owner_id)).rowcount > 0


# --- webhook subscriptions ----------------------------------------------------------------


def add_subscription(
    conn: Connection, owner_id: int, url: str, secret: str, events: list[str], now: int
) -> Subscription:
    sid = conn.execute(
        insert(webhook_subscriptions)
        .values(owner_id=owner_id, url=url, secret=secret, events=events, active=True, created_ms=now)
        .returning(webhook_subscriptions.c.id)
    ).scalar_one()
    return Subscription(sid, owner_id, url, secret, events, True, now)


def subscriptions_of(conn: Connection, owner_id: int) -> list[Subscription]:
    t = webhook_subscriptions
    return [
        Subscription(*r) for r in conn.execute(select(t).where(t.c.owner_id == owner_id).order_by(t.c.id))
    ]


def delete_subscription(conn: Connection, owner_id: int, subscription_id: int) -> bool:
    t = webhook_subscriptions
    return conn.execute(delete(t).where(t.c.id == subscription_id, t.c.owner_id == owner_id)).rowcount > 0


# --- outbox -------------------------------------------------------------------------------


def enqueue(conn: Connection, rows: Iterable[dict[str, Any]]) -> int:
    """Add notifications (dicts of outbox columns); those whose key exists are skipped."""
    full = [{"status": PENDING, "attempts": 0, "subject": None, "secret": None, **r} for r in rows]
    return insert_ignoring_duplicates(conn, notification_outbox, full, "key")


def due(conn: Connection, now: int, limit: int, channels: list[str]) -> list[Outgoing]:
    """Pending rows of `channels` whose time has come, oldest first."""
    t = notification_outbox
    rows = conn.execute(
        select(t)
        .where(t.c.status == PENDING, t.c.next_attempt_ms <= now, t.c.channel.in_(channels))
        .order_by(t.c.next_attempt_ms, t.c.id)
        .limit(limit)
    )
    return [Outgoing(*r) for r in rows]


def claim(conn: Connection, outgoing_id: int, seen_next_ms: int, lease_until_ms: int) -> bool:
    """Take a due row for one send: push its time to `lease_until_ms` unless someone else
    already did (compare-and-set on the time we read). If the sender dies mid-send, the row
    simply becomes due again when the lease ends."""
    t = notification_outbox
    return (
        conn.execute(
            update(t)
            .where(t.c.id == outgoing_id, t.c.status == PENDING, t.c.next_attempt_ms == seen_next_ms)
            .values(next_attempt_ms=lease_until_ms)
        ).rowcount
        == 1
    )


def mark_sent(conn: Connection, outgoing_id: int, now: int) -> None:
    t = notification_outbox
    conn.execute(
        update(t)
        .where(t.c.id == outgoing_id, t.c.status == PENDING)
        .values(status=SENT, sent_ms=now, attempts=t.c.attempts + 1, last_error=None)
    )


def mark_failed_attempt(conn: Connection, outgoing_id: int, error: str, next_attempt_ms: int | None) -> None:
    """Record a failed try; `next_attempt_ms` None means give up (status failed)."""
    t = notification_outbox
    values: dict[str, Any] = {"attempts": t.c.attempts + 1, "last_error": error[:2000]}
    values |= {"status": FAILED} if next_attempt_ms is None else {"next_attempt_ms": next_attempt_ms}
    conn.execute(update(t).where(t.c.id == outgoing_id, t.c.status == PENDING).values(**values))


def cancel_subject(conn: Connection, subject: str) -> int:
    """Withdraw every still-pending notification about `subject` (a cancelled false alarm)."""
    t = notification_outbox
    return conn.execute(
        update(t).where(t.c.subject == subject, t.c.status == PENDING).values(status=CANCELLED)
    ).rowcount


def for_subject(conn: Connection, subject: str) -> list[Outgoing]:
    t = notification_outbox
    return [Outgoing(*r) for r in conn.execute(select(t).where(t.c.subject == subject).order_by(t.c.id))]
