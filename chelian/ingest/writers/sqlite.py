"""SQLite batch writer: one transaction of executemany statements.

SQLite has a single writer at a time, so "is this (vehicle, seq) new?" is answered by
`INSERT OR IGNORE` row counts inside the same transaction without any race.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine

from chelian.ingest.batch import Batch, WriteResult, latest_per_signal

_TELEMETRY = ("INSERT OR IGNORE INTO telemetry (vehicle_id, seq, ts_ms, received_ms, signals) "
              "VALUES (?, ?, ?, ?, ?)")
_LATEST = """
INSERT INTO latest_state (vehicle_id, path, ts_ms, received_ms, value_num, value_text)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (vehicle_id, path) DO UPDATE
SET ts_ms = excluded.ts_ms, received_ms = excluded.received_ms,
    value_num = excluded.value_num, value_text = excluded.value_text
WHERE latest_state.ts_ms <= excluded.ts_ms
"""
_EVENT = ("INSERT OR IGNORE INTO events (vehicle_id, seq, type, ts_ms, received_ms, data) "
          "VALUES (?, ?, ?, ?, ?, ?)")
_STATUS = ("UPDATE vehicles SET online = ?, status_ms = ? "
           "WHERE id = ? AND (status_ms IS NULL OR status_ms <= ?)")
_REJECTED = ("INSERT INTO rejected_messages (topic, vin, reason, detail, payload, received_ms, digest) "
             "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING")


class SqliteWriter:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def write(self, batch: Batch) -> WriteResult:
        raw = self._engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                result = self._write(cur, batch)
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
            return result
        finally:
            raw.close()

    def _write(self, cur, batch: Batch) -> WriteResult:  # type: ignore[no-untyped-def]
        new = []
        for m in batch.telemetry:
            cur.execute(_TELEMETRY, (m.vehicle_id, m.seq, m.ts_ms, m.received_ms, m.signals_json))
            if cur.rowcount == 1:
                new.append(m)
        if new:
            cur.executemany(_LATEST, latest_per_signal(new))
        new_events = []
        for e in batch.events:
            cur.execute(_EVENT, (e.vehicle_id, e.seq, e.type, e.ts_ms, e.received_ms, json.dumps(e.data)))
            if cur.rowcount == 1:
                new_events.append(e)
        cur.executemany(_STATUS, [(s.online, s.ts_ms, s.vehicle_id, s.ts_ms) for s in batch.statuses])
        cur.executemany(_REJECTED, [(x.topic, x.vin, x.reason, x.detail, x.payload, x.received_ms, x.digest)
                                    for x in batch.rejections])
        duplicates = len(batch.telemetry) - len(new) + len(batch.events) - len(new_events)
        return WriteResult(new, new_events, duplicates, batch.statuses)
