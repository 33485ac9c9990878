"""Roadside-assistance tickets and their history."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from chelian.storage.repositories.notifications import insert_ignoring_duplicates
from chelian.storage.tables_safety import roadside_tickets, roadside_updates


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    vehicle_id: int
    key: str
    source: str
    problem: str
    status: str
    assignee: str | None
    latitude: float | None
    longitude: float | None
    health: dict[str, Any]
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class TicketUpdate:
    id: int
    ticket_id: int
    ts_ms: int
    status: str
    actor: str
    assignee: str | None
    note: str | None


def insert_ticket(conn: Connection, values: dict[str, Any]) -> Ticket | None:
    """Insert unless `key` exists; the new ticket, or None for a repeat."""
    if not insert_ignoring_duplicates(conn, roadside_tickets, [values], "key"):
        return None
    row = conn.execute(select(roadside_tickets).where(roadside_tickets.c.key == values["key"])).one()
    return Ticket(*row)


def get(conn: Connection, vehicle_id: int, ticket_id: int) -> Ticket | None:
    t = roadside_tickets
    row = conn.execute(select(t).where(t.c.id == ticket_id, t.c.vehicle_id == vehicle_id)).first()
    return Ticket(*row) if row else None


def for_vehicle(conn: Connection, vehicle_id: int, limit: int) -> list[Ticket]:
    t = roadside_tickets
    rows = conn.execute(
        select(t).where(t.c.vehicle_id == vehicle_id).order_by(t.c.created_ms.desc()).limit(limit)
    )
    return [Ticket(*r) for r in rows]


def set_status(
    conn: Connection,
    ticket_id: int,
    allowed_from: Collection[str],
    status: str,
    now: int,
    assignee: str | None = None,
) -> bool:
    """Compare-and-set transition; `assignee` replaces the current one when given."""
    t = roadside_tickets
    values: dict[str, Any] = {"status": status, "updated_ms": now}
    if assignee is not None:
        values["assignee"] = assignee
    return (
        conn.execute(
            update(t).where(t.c.id == ticket_id, t.c.status.in_(list(allowed_from))).values(**values)
        ).rowcount
        == 1
    )


def add_update(
    conn: Connection,
    ticket_id: int,
    ts_ms: int,
    status: str,
    actor: str,
    assignee: str | None,
    note: str | None,
) -> None:
    conn.execute(
        insert(roadside_updates).values(
            ticket_id=ticket_id, ts_ms=ts_ms, status=status, actor=actor, assignee=assignee, note=note
        )
    )


def updates(conn: Connection, ticket_id: int) -> list[TicketUpdate]:
    t = roadside_updates
    return [
        TicketUpdate(*r) for r in conn.execute(select(t).where(t.c.ticket_id == ticket_id).order_by(t.c.id))
    ]
