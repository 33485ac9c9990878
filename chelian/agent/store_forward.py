"""The agent's store-and-forward queue and sequence counters, in one SQLite file.

Why on disk: a car in a tunnel, a car park or a dead zone keeps sampling; what it sampled
must reach the cloud later, in order, with its own timestamps, also if the agent restarts
meanwhile. So every message is written here *before* it is published and removed only
when the broker has acknowledged it (QoS 1 PUBACK). A crash between the two sends the
message again, which the cloud recognises by `(vin, seq)` and stores once.

Why sequence numbers live here too: a number must never be reused (the cloud would drop
the new message as a duplicate). Numbers are reserved in blocks (hi/lo) so that the disk is
written once per `block` messages, not once per message; a crash leaves a gap, never a
repeat.

Why one file can serve many cars: the simulator hosts hundreds of agents in one process;
one connection with per-VIN rows costs one file handle and lets SQLite batch its work.
Each agent's view is an `Outbox(db, vin)`.

Why writes are grouped: a commit per message costs ~150 us of write() calls, a fleet of
1 000 cars would spend a fifth of a core on it. Writes join an open transaction that
`maybe_commit()` closes after `commit_interval_s` (the agent calls it every tick), so a
crash of the process loses at most that interval of samples; SQLite's WAL keeps the file
itself intact either way.

Why there is a memory mirror: when the link is up, messages leave within milliseconds, so
re-reading them from disk would double the I/O for nothing. `Outbox` keeps the oldest
queued rows (up to `mem_rows`) in memory as well; only a long outage spills past it, and
then rows are paged back in from disk in order.

Example:
    db = QueueDB(Path("/var/lib/chelian-agent/queue.db"))
    box = db.outbox("1M8GDM9AXKP042788")
    seq = box.next_seq("telemetry")
    box.append("telemetry", seq, ts_ms, payload)
    for row in box.peek(20): ...publish, then box.remove([row.id])
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SEQ_BLOCK = 1000
MAX_ROWS = 100_000
"""Per car: 27 hours at 1 message/s. Beyond this the oldest messages are dropped (and counted)."""
MEM_ROWS = 256
COMMIT_INTERVAL_S = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vin TEXT NOT NULL,
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_outbox_vin_id ON outbox (vin, id);
CREATE TABLE IF NOT EXISTS seq (
    vin TEXT NOT NULL,
    channel TEXT NOT NULL,
    reserved INTEGER NOT NULL,
    PRIMARY KEY (vin, channel)
);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """A message waiting for the broker's acknowledgement."""

    id: int
    channel: str
    seq: int
    ts_ms: int
    payload: bytes


class QueueDB:
    """The SQLite file (WAL, synchronous=NORMAL: survives a crash of the process, and
    a power cut costs at most the last transactions, not the file)."""

    def __init__(self, path: Path | None, *, commit_interval_s: float = COMMIT_INTERVAL_S) -> None:
        self.commit_interval_s = commit_interval_s
        self._opened_at = 0.0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # One event loop thread uses it, but it may be created on another (Fleet.__init__).
        self.conn = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def outbox(self, vin: str, **kwargs: int) -> Outbox:
        return Outbox(self, vin, **kwargs)

    def write(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        """Run a change inside the current group transaction (opening one if needed)."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self._opened_at = time.monotonic()
        return self.conn.execute(sql, params)

    def write_many(self, sql: str, params: list[tuple[object, ...]]) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self._opened_at = time.monotonic()
        self.conn.executemany(sql, params)

    def maybe_commit(self) -> None:
        """Commit if the open transaction is older than `commit_interval_s`."""
        if self.conn.in_transaction and time.monotonic() - self._opened_at >= self.commit_interval_s:
            self.conn.execute("COMMIT")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.commit()
        self.conn.close()


class Outbox:
    """One car's queue, oldest first, and its per-channel sequence numbers."""

    def __init__(self, db: QueueDB, vin: str, *, max_rows: int = MAX_ROWS, mem_rows: int = MEM_ROWS,
                 seq_block: int = SEQ_BLOCK) -> None:
        if max_rows < 1 or mem_rows < 1 or seq_block < 1:
            raise ValueError("max_rows, mem_rows and seq_block must be positive")
        self.db, self.vin = db, vin
        self.max_rows, self.mem_rows, self.seq_block = max_rows, mem_rows, seq_block
        self.dropped = 0
        conn = db.conn
        self._len: int = conn.execute("SELECT count(*) FROM outbox WHERE vin = ?", (vin,)).fetchone()[0]
        self._mem: deque[Queued] = deque()
        self._complete = self._len == 0
        """True while `_mem` holds every queued row; False once rows exist only on disk."""
        rows = conn.execute("SELECT channel, reserved FROM seq WHERE vin = ?", (vin,)).fetchall()
        self._reserved: dict[str, int] = dict(rows)
        self._next: dict[str, int] = dict(self._reserved)
        """Last number handed out per channel; a restart continues after the reserved block."""

    # --- sequence numbers --------------------------------------------------------------------

    def next_seq(self, channel: str) -> int:
        value = self._next.get(channel, 0) + 1
        self._next[channel] = value
        if value > self._reserved.get(channel, 0):
            self._reserve(channel, value + self.seq_block - 1)
        return value

    def raise_floor(self, channel: str, floor: int) -> None:
        """Make every later number greater than `floor` (taking over an older counter)."""
        if self._next.get(channel, 0) < floor:
            self._next[channel] = floor
            if self._reserved.get(channel, 0) < floor:
                self._reserve(channel, floor)

    def _reserve(self, channel: str, upto: int) -> None:
        self.db.write(
            "INSERT INTO seq (vin, channel, reserved) VALUES (?, ?, ?) "
            "ON CONFLICT (vin, channel) DO UPDATE SET reserved = excluded.reserved",
            (self.vin, channel, upto))
        self.db.commit()  # at once: numbers of an unsaved block could be handed out again after a crash
        self._reserved[channel] = upto

    # --- the queue ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def append(self, channel: str, seq: int, ts_ms: int, payload: bytes) -> Queued:
        """Store a message durably; it is the newest in the queue."""
        if self._len >= self.max_rows:
            self._drop_oldest(self._len - self.max_rows + 1)
        cur = self.db.write(
            "INSERT INTO outbox (vin, channel, seq, ts_ms, payload) VALUES (?, ?, ?, ?, ?)",
            (self.vin, channel, seq, ts_ms, payload))
        row = Queued(cur.lastrowid or 0, channel, seq, ts_ms, payload)
        self._len += 1
        if self._complete and len(self._mem) < self.mem_rows:
            self._mem.append(row)
        else:
            self._complete = False
        return row

    def peek(self, limit: int) -> list[Queued]:
        """Up to `limit` (at most `mem_rows`) oldest messages, without removing them."""
        if len(self._mem) < limit and not self._complete:
            self._page_in()
        return [self._mem[i] for i in range(min(limit, len(self._mem)))]

    def _page_in(self) -> None:
        after = self._mem[-1].id if self._mem else -1
        want = self.mem_rows - len(self._mem)
        rows = self.db.conn.execute(
            "SELECT id, channel, seq, ts_ms, payload FROM outbox "
            "WHERE vin = ? AND id > ? ORDER BY id LIMIT ?",
            (self.vin, after, want)).fetchall()
        self._mem.extend(Queued(i, c, s, t, bytes(p)) for i, c, s, t, p in rows)
        if len(rows) < want:
            self._complete = True

    def remove(self, ids: Iterable[int]) -> None:
        """Forget acknowledged messages."""
        gone = set(ids)
        if not gone:
            return
        self.db.write_many("DELETE FROM outbox WHERE id = ?", [(i,) for i in gone])
        self._len = max(0, self._len - len(gone))
        popped = 0
        while self._mem and self._mem[0].id in gone:  # the usual case: the oldest were acknowledged
            self._mem.popleft()
            popped += 1
        if popped < len(gone):
            self._mem = deque(r for r in self._mem if r.id not in gone)

    def _drop_oldest(self, n: int) -> None:
        rows = self.db.conn.execute("SELECT id FROM outbox WHERE vin = ? ORDER BY id LIMIT ?",
                                    (self.vin, n)).fetchall()
        self.remove(r[0] for r in rows)
        self.dropped += len(rows)


class TokenBucket:
    """Paces the replay under the cloud's per-car rate limit (a token bucket as well).

    The cloud refuses, and dead-letters, messages beyond `max_messages_per_s` with bursts of
    `max_message_burst` (defaults 50/s and 500). A car that comes back after an hour holds
    3 600 messages; sending them flat out would lose most of them to `rate_limited`. The
    agent's own bucket is set a margin below the cloud's, and is kept across reconnects so a
    flapping link cannot burst twice.
    """

    def __init__(self, rate_per_s: float, burst: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self.rate, self.burst, self._clock = rate_per_s, float(burst), monotonic
        self._tokens, self._at = float(burst), monotonic()

    def available(self) -> int:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def take(self, n: int) -> None:
        self.available()
        self._tokens -= n

    def wait_s(self) -> float:
        """How long until one token is there."""
        return max(0.0, (1.0 - self._tokens) / self.rate) if self.available() < 1 else 0.0
