"""A thread that holds a PostgreSQL connection in LISTEN on one channel and hands on each payload.

Two things cross processes this way: command wake-ups (services/commands/wakeups.py) and the
live map's feed (web/feed.py). Both need the same care, written once here: a connection of
its own taken out of the pool for good (LISTEN is session state), autocommit so notifications
arrive as they are committed, a wake-up every `poll_s` to notice `stop()`, and reconnection
with backoff when the connection drops. Notifications sent while nobody listens are lost;
`on_listening` runs after every (re)connect so a subclass can make up for that.

Subclasses say what a payload means (`deliver`) and what to do after a (re)connect or a loss.
The sending side is `notify()`: many payloads on one channel in one round trip.

Example:
    class Echo(ChannelListener):
        def deliver(self, payload: str) -> None:
            print(payload)

    with Echo(engine, "my_channel", name="echo", logger=log, events=("echo_up", "echo_lost")):
        ...
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Final, Self

MAX_NOTIFY_BYTES: Final = 7_900
"""PostgreSQL refuses NOTIFY payloads of 8000 bytes or more."""

_NOTIFY_MANY = "SELECT pg_notify(%(channel)s, p) FROM unnest(%(payloads)s::text[]) AS p"


def notify(conn: Any, channel: str, payloads: Sequence[str]) -> None:
    """NOTIFY every payload on `channel` in one statement; delivered when `conn` commits."""
    conn.exec_driver_sql(_NOTIFY_MANY, {"channel": channel, "payloads": list(payloads)})


class ChannelListener:
    """LISTEN on `channel` in a daemon thread; `deliver(payload)` for each notification."""

    def __init__(self, engine: Any, channel: str, *, name: str, logger: logging.Logger,
                 events: tuple[str, str], poll_s: float = 1.0) -> None:
        self.engine = engine
        self.channel = channel
        self.poll_s = poll_s
        """How often the thread looks up from waiting to check whether it should stop."""
        self.listening = threading.Event()
        self._log = logger
        self._listening_event, self._lost_event = events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # --- what a subclass decides ----------------------------------------------------------

    def deliver(self, payload: str) -> None:
        raise NotImplementedError

    def on_listening(self) -> None:
        """After every (re)connect: what was sent while nobody listened is lost."""

    def on_lost(self) -> None:
        """After the connection dropped, before reconnecting."""

    # --- life cycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> Self:
        self._thread.start()
        if not self.listening.wait(timeout_s):
            self._log.warning("%s reason=%s", self._lost_event, "not listening yet")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.1
            except Exception as exc:  # a dropped connection: reconnect with backoff
                self.listening.clear()
                self._log.warning("%s error=%r retry_in_s=%.1f", self._lost_event, exc, delay)
                self.on_lost()
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _listen(self) -> None:
        raw = self.engine.raw_connection()
        conn: Any = raw.driver_connection
        raw.detach()  # out of the pool for good: LISTEN is session state
        try:
            conn.autocommit = True
            conn.execute(f"LISTEN {self.channel}")
            self.listening.set()
            self.on_listening()
            self._log.info("%s channel=%s", self._listening_event, self.channel)
            while not self._stop.is_set():
                for note in conn.notifies(timeout=self.poll_s):
                    self.deliver(note.payload)
        finally:
            conn.close()
