"""Alerts: written once per idempotency key, read back per car newest first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from chelian.storage.tables_rules import alert_rules, alerts


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    type: str
    ts_ms: int
    data: dict[str, Any]


def insert_ignore(conn: Connection, table, rows: list[dict[str, Any]], keys: list[str]) -> None:  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT DO NOTHING on either dialect (a redelivered alert lands once)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=keys), rows)


def record(conn: Connection, items: Iterable[tuple[int, str, int, str, dict[str, Any]]]) -> None:
    """(vehicle_id, type, ts_ms, key, data) tuples."""
    rows = [dict(vehicle_id=v, type=t, ts_ms=ts, key=k, data=d) for v, t, ts, k, d in items]
    insert_ignore(conn, alerts, rows, ["key"])


def for_vehicle(conn: Connection, vehicle_id: int, start_ms: int, end_ms: int, types: list[str] | None,
                limit: int) -> list[Alert]:
    c = alerts.c
    query = select(c.id, c.type, c.ts_ms, c.data).where(c.vehicle_id == vehicle_id, c.ts_ms >= start_ms,
                                                        c.ts_ms <= end_ms)
    if types:
        query = query.where(c.type.in_(types))
    return [Alert(*row) for row in conn.execute(query.order_by(c.ts_ms.desc(), c.id.desc()).limit(limit))]


@dataclass(frozen=True, slots=True)
class Rules:
    speed_limit_kmh: float | None
    curfew_start_min: int | None
    curfew_end_min: int | None
    timezone: str


def all_rules(conn: Connection) -> dict[int, Rules]:
    c = alert_rules.c
    return {row[0]: Rules(*row[1:]) for row in conn.execute(
        select(c.vehicle_id, c.speed_limit_kmh, c.curfew_start_min, c.curfew_end_min, c.timezone))}


def rules_for(conn: Connection, vehicle_id: int) -> Rules | None:
    c = alert_rules.c
    row = conn.execute(select(c.speed_limit_kmh, c.curfew_start_min, c.curfew_end_min, c.timezone)
                       .where(c.vehicle_id == vehicle_id)).first()
    return Rules(*row) if row else None


def put_rules(conn: Connection, vehicle_id: int, rules: Rules) -> None:
    conn.execute(alert_rules.delete().where(alert_rules.c.vehicle_id == vehicle_id))
    conn.execute(alert_rules.insert().values(vehicle_id=vehicle_id, speed_limit_kmh=rules.speed_limit_kmh,
                                             curfew_start_min=rules.curfew_start_min,
                                             curfew_end_min=rules.curfew_end_min, timezone=rules.timezone))
