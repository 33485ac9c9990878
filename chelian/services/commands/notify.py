"""In-process wake-ups: an ack settled by the relay thread wakes the API request waiting on it.

`GET .../commands/{id}?wait_s=N` must answer as soon as the command is final, not at the next
poll. The relay (a plain thread) calls `notify(ids)`; each waiting request holds a `Watch`
bound to its event loop, set through `call_soon_threadsafe`. Waiting costs no thread.

Several API processes do not share memory: on PostgreSQL, wakeups.py carries each
notification to the other processes (LISTEN/NOTIFY), and a waiter re-reads the database only
every `SAFETY_POLL_S`. Without it (SQLite: one process) a waiter re-reads every `POLL_S`, so
a command settled by some other program is still seen within that.

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
from typing import Any, Final

POLL_S: Final = 0.25
SAFETY_POLL_S: Final = 2.0
"""The re-read interval when cross-process wake-ups are on: only a safety net."""


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
        with self._lock:
            woken = [(cid, w) for cid in command_ids for w in self._watches.get(cid, ())]
        for cid, watch in woken:
            try:
                watch.loop.call_soon_threadsafe(watch._wake, (changes or {}).get(cid))
            except RuntimeError:  # that request's loop has closed: nobody is waiting any more
                pass

    def notify_all(self) -> None:
        """Wake every watch to re-read (notifications may have been lost)."""
        with self._lock:
            ids = list(self._watches)
        self.notify(ids)

    @property
    def watching(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._watches.values())
