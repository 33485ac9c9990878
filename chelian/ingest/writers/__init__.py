"""One batch writer per database dialect, all with the same contract:

`write(batch) -> WriteResult` stores the whole batch in one transaction or raises; a
telemetry message whose (vehicle, seq) is already stored is skipped (redelivery), and
latest state only ever moves forward in device time.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from chelian.ingest.batch import Batch, WriteResult


class BatchWriter(Protocol):
    def write(self, batch: Batch) -> WriteResult: ...


def writer_for(engine: Engine) -> BatchWriter:
    if engine.dialect.name == "postgresql":
        from chelian.ingest.writers.postgres import PostgresWriter

        return PostgresWriter(engine)
    from chelian.ingest.writers.sqlite import SqliteWriter

    return SqliteWriter(engine)
