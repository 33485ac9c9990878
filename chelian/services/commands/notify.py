"""In-process wake-ups: an ack settled by the relay thread wakes the API request waiting on it.

`GET .../commands/{id}?wait_s=N` must answer as soon as the command is final, not at the next
poll. The relay (a plain thread) calls `notify(ids)`; each waiting request holds a `Watch`
bound to its event loop, set through `call_soon_threadsafe`. Waiting costs no thread.

Several API processes do not share memory: on PostgreSQL, wakeups.py carries each
notification to the other processes (LISTEN/NOTIFY), and a waiter re-reads the database only
every `SAFETY_POLL_S`. Without it (SQLite: one process) a waiter re-reads every `POLL_S`, so
a command settled by some other program is still seen within that.

The notifier also remembers, for a minute at most, the commands this process created (`remember`),
keyed by who asked (their token's digest) and for which car, and applies every notified change
to them. The caller who sends a command and then waits for it - the usual client - is answered
from memory: no database read and no worker thread per poll (bench/commands.py). A change
notified without its fields (an expiry, a forced settle, a send or resend by any process: see
lifecycle.mark_sent) or lost wake-ups drop the entry, and the next read goes to the database.
What that costs: a token revoked after it sent a command can still read that one command's
outcome until the entry lapses.

Example:
    with notifier.watch(command_id) as watch:   # register first, then read: no lost wake-up
        while not final(read()):
            await watch.wait(0.25)
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Final

POLL_S: Final = 0.25
SAFETY_POLL_S: Final = 2.0
"""The re-read interval when cross-process wake-ups are on: only a safety net."""
RECENT_MS: Final = 60_000
"""How long a created command is remembered for its caller at most (less if it expires sooner)."""
MAX_RECENT: Final = 20_000
"""Remembered commands at most (the oldest go first): 200 commands/s for a minute would be 12 000."""


@dataclass(slots=True)
class _Recent:
    asker: tuple[str, str]
    """(token digest, VIN) of the request that created it: only the same caller is answered."""
    row: Any
    """The command as last known: a dataclass (CommandRow) that notified changes are applied to."""
    until_ms: int


class Watch:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self._change: dict[str, Any] | None = None

    def _wake(self, change: dict[str, Any] | None) -> None:
        """In the watch's own loop (via call_soon_threadsafe)."""
        if change is not None:
            self._change = change
        self.event.set()

    def take_change(self) -> dict[str, Any] | None:
        """The fields the last notification said changed (None: re-read to find out)."""
        change, self._change = self._change, None
        return change

    async def wait(self, timeout_s: float) -> bool:
        """True if woken by a notification, False on timeout; re-armed either way."""
        try:  # asyncio.timeout, not wait_for: no extra task per wait
            async with asyncio.timeout(timeout_s):
                await self.event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.event.clear()


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, set[Watch]] = {}
        self.origin = uuid.uuid4().hex[:16]
        """Names this notifier's process in cross-process notifications (wakeups.py)."""
        self._recent: dict[str, _Recent] = {}

    def remember(self, command_id: str, asker: tuple[str, str], row: Any, until_ms: int, now_ms: int) -> None:
        """Keep `row` for `asker` until `until_ms` (capped at RECENT_MS from now); call it before
        the command can be settled (before it is dispatched), or a settlement could be missed."""
        with self._lock:
            recent = self._recent
            while recent and (len(recent) >= MAX_RECENT or next(iter(recent.values())).until_ms <= now_ms):
                del recent[next(iter(recent))]
            recent[command_id] = _Recent(asker, row, min(until_ms, now_ms + RECENT_MS))

    def recall(self, command_id: str, asker: tuple[str, str], now_ms: int) -> Any | None:
        """The remembered command if `asker` created it here and it has not lapsed, else None."""
        with self._lock:
            entry = self._recent.get(command_id)
            if entry is None or entry.asker != asker or now_ms >= entry.until_ms:
                return None
            return entry.row

    def forget(self, command_ids: Iterable[str]) -> None:
        """These commands changed in ways no notification carries (resent): read them afresh."""
        with self._lock:
            for command_id in command_ids:
                self._recent.pop(command_id, None)

    @contextmanager
    def watch(self, command_id: str) -> Iterator[Watch]:
        watch = Watch(asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(command_id, set()).add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                watches = self._watches.get(command_id)
                if watches is not None:
                    watches.discard(watch)
                    if not watches:
                        del self._watches[command_id]

    def notify(self, command_ids: Iterable[str], changes: Mapping[str, dict[str, Any]] | None = None) -> None:
        """Wake everyone watching these commands (from any thread), optionally telling them
        which fields changed to what."""
        command_ids = list(command_ids)
        with self._lock:  # the same lock as `watch`: a waiter registered first sees the change either way
            for cid in command_ids:
                entry = self._recent.get(cid)
                change = changes.get(cid) if changes else None
                if entry is not None and change is not None:
                    entry.row = replace(entry.row, **change)
                elif entry is not None:
                    del self._recent[cid]
            woken = [(cid, w) for cid in command_ids for w in self._watches.get(cid, ())]
        for cid, watch in woken:
            try:
                watch.loop.call_soon_threadsafe(watch._wake, (changes or {}).get(cid))
            except RuntimeError:  # that request's loop has closed: nobody is waiting any more
                pass

    def notify_all(self) -> None:
        """Wake every watch to re-read and forget every remembered command (notifications may
        have been lost)."""
        with self._lock:
            ids = list(self._watches)
            self._recent.clear()
        self.notify(ids)

    @property
    def watching(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._watches.values())
