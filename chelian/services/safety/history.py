"""A car's stored telemetry, shaped as the detectors see it live (for decisions one ingest
worker cannot make alone).

With several ingest workers in one `$share` group the broker deals a car's messages out among
them, so the acceleration spike of a crash may be committed by one worker and the speed
collapse by another. Both are in the `telemetry` table, though, and every worker reads it
only *after* committing its own batch. So whichever of the two commits last sees both halves
and can replay them through the same rules (`CrashObserver` does this).

Example:
    stored = StoredTelemetry(engine, catalog)
    rows = stored.window(vehicle_id, start_ms=t - 5000, end_ms=t)   # oldest first
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, and_, or_, select

from chelian.ingest.batch import SampleRow, TelemetryRows
from chelian.signals import Catalog
from chelian.storage.tables import telemetry
from chelian.storage.values import encode_value


class StoredTelemetry:
    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog

    def window(self, vehicle_id: int, start_ms: int, end_ms: int) -> list[TelemetryRows]:
        """The car's messages with device time in [start_ms, end_ms], in (time, seq) order."""
        c = telemetry.c
        query = (select(c.seq, c.ts_ms, c.received_ms, c.signals)
                 .where(c.vehicle_id == vehicle_id, c.ts_ms >= start_ms, c.ts_ms <= end_ms)
                 .order_by(c.ts_ms, c.seq))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [self._row(vehicle_id, seq, ts, received, signals) for seq, ts, received, signals in rows]

    def previous(self, row: TelemetryRows, path: str, lookback_ms: int) -> object | None:
        """The value `path` had in the car's last stored message before `row` that carried it
        (looking back at most `lookback_ms`); None if there is none. Booleans come back as
        True/False from PostgreSQL and 1/0 from SQLite."""
        c = telemetry.c
        before = or_(c.ts_ms < row.ts_ms, and_(c.ts_ms == row.ts_ms, c.seq < row.seq))
        query = (select(c.signals[path])
                 .where(c.vehicle_id == row.vehicle_id, c.ts_ms >= row.ts_ms - lookback_ms, before,
                        c.signals[path].as_string().is_not(None))
                 .order_by(c.ts_ms.desc(), c.seq.desc()).limit(1))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def _row(self, vehicle_id: int, seq: int, ts_ms: int, received_ms: int,
             signals: dict[str, object] | str) -> TelemetryRows:
        values = json.loads(signals) if isinstance(signals, str) else signals
        samples: dict[str, SampleRow] = {}
        for path, value in values.items():
            signal = self.catalog.get(path)
            if signal is None:  # stored under a catalog this process does not load
                continue
            num, text = encode_value(signal, value)
            samples[path] = (vehicle_id, path, ts_ms, received_ms, num, text)
        return TelemetryRows(vehicle_id, seq, ts_ms, received_ms, json.dumps(values), samples)
