"""Per-car sequence numbers that keep increasing across restarts.

The cloud recognises a redelivered message by (vin, seq), so a car that restarted its
counter at 1 would have its new messages thrown away as duplicates. Writing the counter to
disk on every message would be slow, so the store reserves numbers in blocks (hi/lo): it
persists "everything below N may have been used" before handing out numbers below N. A
crash loses at most the rest of a block, which only leaves a gap; seq must increase, not
be dense.

Example:
    store = SeqStore(Path("/tmp/sim/seq.json"))
    store.next("1FADP3K2XEL959043", "telemetry")   # 1, then 2, 3, ... and 1001+ after a restart
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

BLOCK = 1000


class SeqStore:
    """Hands out increasing integers per (vin, channel); persisted when `path` is given."""

    def __init__(self, path: Path | None = None, block: int = BLOCK) -> None:
        self.path, self.block = path, block
        self._lock = threading.Lock()
        self._reserved: dict[str, int] = self._load()
        self._next: dict[str, int] = dict(self._reserved)
        """Next number per key; starts where the previous run's reservation ended."""

    def _load(self) -> dict[str, int]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # unreadable: starting again at 1 is still better than refusing to drive
        return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def next(self, vin: str, channel: str) -> int:
        key = f"{vin}/{channel}"
        with self._lock:
            value = self._next.get(key, 0) + 1
            self._next[key] = value
            if value > self._reserved.get(key, 0):
                self._reserved[key] = value + self.block - 1
                self._save()
            return value

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._reserved, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a crash mid-write never loses the reservation
