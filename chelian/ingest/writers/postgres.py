"""PostgreSQL batch writer: COPY into staging, one INSERT per table, one transaction per batch.

Telemetry rows go in with `ON CONFLICT DO NOTHING RETURNING`, which is what makes two
ingest workers that both receive a redelivered message store it once: the second blocks
on the first one's row lock, then learns the row exists. Latest state is built only from
rows that were really new, and upserted in (vehicle, path) order so concurrent workers
take row locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine

from chelian.ingest.batch import Batch, WriteResult, latest_per_signal

# Rows reach the server by COPY into per-connection staging tables (psycopg's COPY row
# writer is C; dumping the same rows as array parameters costs several times more Python),
# then one INSERT ... SELECT applies the conflict rules. ON COMMIT DELETE ROWS empties them.
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_telemetry
    (vehicle_id int, seq bigint, ts_ms bigint, received_ms bigint, signals jsonb) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_latest
    (vehicle_id int, path text, ts_ms bigint, received_ms bigint, value_num float8, value_text text)
    ON COMMIT DELETE ROWS;
"""
_COPY_TELEMETRY = "COPY staging_telemetry (vehicle_id, seq, ts_ms, received_ms, signals) FROM STDIN"
_TELEMETRY = """
INSERT INTO telemetry (vehicle_id, seq, ts_ms, received_ms, signals)
SELECT * FROM staging_telemetry
ON CONFLICT DO NOTHING
RETURNING vehicle_id, seq
"""
_COPY_LATEST = "COPY staging_latest (vehicle_id, path, ts_ms, received_ms, value_num, value_text) FROM STDIN"
_LATEST = """
INSERT INTO latest_state AS s (vehicle_id, path, ts_ms, received_ms, value_num, value_text)
SELECT * FROM staging_latest ORDER BY vehicle_id, path
ON CONFLICT (vehicle_id, path) DO UPDATE
SET ts_ms = excluded.ts_ms, received_ms = excluded.received_ms,
    value_num = excluded.value_num, value_text = excluded.value_text
WHERE s.ts_ms <= excluded.ts_ms
"""
_EVENTS = """
INSERT INTO events (vehicle_id, seq, type, ts_ms, received_ms, data)
SELECT * FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::json[])
ON CONFLICT (vehicle_id, seq) DO NOTHING
RETURNING vehicle_id, seq
"""
_STATUS = """
UPDATE vehicles SET online = %s, status_ms = %s
WHERE id = %s AND (status_ms IS NULL OR status_ms <= %s)
"""
_REJECTED = """
INSERT INTO rejected_messages (topic, vin, reason, detail, payload, received_ms, digest)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (digest) DO NOTHING
"""


class PostgresWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, batch: Batch) -> WriteResult:
        raw = self._engine.raw_connection()
        try:
            conn = raw.driver_connection
            with conn.transaction(), conn.cursor() as cur:  # type: ignore[union-attr]
                return self._write(cur, batch)
        finally:
            raw.close()

    def _write(self, cur, batch: Batch) -> WriteResult:  # type: ignore[no-untyped-def]
        new = []
        if batch.telemetry:
            cur.execute(_STAGING)
            with cur.copy(_COPY_TELEMETRY) as copy:
                for m in batch.telemetry:
                    copy.write_row((m.vehicle_id, m.seq, m.ts_ms, m.received_ms, m.signals_json))
            cur.execute(_TELEMETRY)
            stored = set(cur.fetchall())
            new = [m for m in batch.telemetry if (m.vehicle_id, m.seq) in stored]
        if new:
            with cur.copy(_COPY_LATEST) as copy:
                for row in latest_per_signal(new):
                    copy.write_row(row)
            cur.execute(_LATEST)
        new_events = []
        if batch.events:
            e = batch.events
            cur.execute(_EVENTS, ([x.vehicle_id for x in e], [x.seq for x in e], [x.type for x in e],
                                  [x.ts_ms for x in e], [x.received_ms for x in e],
                                  [json.dumps(x.data) for x in e]))
            stored_events = set(cur.fetchall())
            new_events = [x for x in e if (x.vehicle_id, x.seq) in stored_events]
        if batch.statuses:
            cur.executemany(_STATUS, [(s.online, s.ts_ms, s.vehicle_id, s.ts_ms) for s in batch.statuses])
        if batch.rejections:
            cur.executemany(_REJECTED, [(x.topic, x.vin, x.reason, x.detail, x.payload, x.received_ms,
                                         x.digest) for x in batch.rejections])
        duplicates = len(batch.telemetry) - len(new) + len(batch.events) - len(new_events)
        return WriteResult(new, new_events, duplicates, batch.statuses)
