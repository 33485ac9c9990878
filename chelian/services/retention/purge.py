"""Telemetry retention: delete what is older than the retention window, in small batches.

Never one big DELETE: on PostgreSQL that holds row locks on millions of rows and bloats
WAL; on SQLite it holds the single write lock for as long as it runs, stalling ingest.
Instead each batch deletes at most `batch_rows` rows of one car (found through the
(vehicle_id, ts_ms) index) in its own short transaction, so ingest interleaves freely.

Example:
    purge_telemetry(engine, older_than_ms=now_ms() - 30 * 86_400_000, batch_rows=5000)
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, tuple_

from chelian.storage.db import now_ms
from chelian.storage.repositories.users import purge_expired_tokens
from chelian.storage.tables import rejected_messages, telemetry, vehicles

log = logging.getLogger("chelian.retention")
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class PurgeReport:
    telemetry_rows: int
    rejected_rows: int
    batches: int


def purge_telemetry(engine: Engine, older_than_ms: int, batch_rows: int = 5000) -> PurgeReport:
    with engine.connect() as conn:
        vehicle_ids = list(conn.execute(select(vehicles.c.id).order_by(vehicles.c.id)).scalars())
    deleted = batches = 0
    t = telemetry.c
    for vehicle_id in vehicle_ids:
        while True:
            victims = (select(t.vehicle_id, t.seq)
                       .where(t.vehicle_id == vehicle_id, t.ts_ms < older_than_ms)
                       .limit(batch_rows))
            with engine.begin() as conn:
                n = conn.execute(delete(telemetry).where(tuple_(t.vehicle_id, t.seq).in_(victims))).rowcount
            batches += 1
            deleted += n
            if n < batch_rows:
                break
    rejected = 0
    r = rejected_messages.c
    while True:
        victims_ids = select(r.id).where(r.received_ms < older_than_ms).limit(batch_rows)
        with engine.begin() as conn:
            n = conn.execute(delete(rejected_messages).where(r.id.in_(victims_ids))).rowcount
        batches += 1
        rejected += n
        if n < batch_rows:
            break
    with engine.begin() as conn:
        purge_expired_tokens(conn, now_ms())
    return PurgeReport(deleted, rejected, batches)


class RetentionWorker:
    """Runs `purge_telemetry` every `interval_s` in a daemon thread until stopped."""

    def __init__(self, engine: Engine, retention_days: float, batch_rows: int, interval_s: float) -> None:
        self.engine = engine
        self.retention_ms = int(retention_days * DAY_MS)
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chelian-retention", daemon=True)

    def start(self) -> RetentionWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                report = purge_telemetry(self.engine, now_ms() - self.retention_ms, self.batch_rows)
                log.info("telemetry_purged rows=%d rejected=%d batches=%d", report.telemetry_rows,
                         report.rejected_rows, report.batches)
            except Exception:  # a failed purge is retried next interval; ingest is unaffected
                log.exception("telemetry_purge_failed")
