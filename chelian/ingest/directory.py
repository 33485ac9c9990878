"""VIN -> vehicle id lookups for ingest, cached so the hot path never queries per message.

Unknown VINs are re-checked at most every `negative_ttl_s`, so a car provisioned a moment
ago is picked up quickly while a stream from an unknown VIN costs no query per message.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Engine

from chelian.storage.repositories import vehicles


class VehicleDirectory:
    def __init__(self, engine: Engine, negative_ttl_s: float = 2.0) -> None:
        self._engine = engine
        self._ids: dict[str, int] = {}
        self._unknown_until: dict[str, float] = {}
        self._negative_ttl_s = negative_ttl_s

    def resolve(self, vins: Iterable[str]) -> dict[str, int]:
        """Ids for the given VINs that are registered; unregistered ones are left out."""
        now = time.monotonic()
        missing = [v for v in set(vins) if v not in self._ids and self._unknown_until.get(v, 0.0) <= now]
        if missing:
            with self._engine.connect() as conn:
                found = vehicles.ids_by_vin(conn, missing)
            self._ids.update(found)
            for vin in missing:
                if vin not in found:
                    self._unknown_until[vin] = now + self._negative_ttl_s
        return self._ids
