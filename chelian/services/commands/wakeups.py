"""Cross-process wake-ups over PostgreSQL LISTEN/NOTIFY: an ack settled in one API process
wakes the requests waiting on that command in every other one.

Each API process of `chelian serve --workers N` runs its own relay in the shared ack group,
so the relay that settles a command is often not in the process whose request waits for it.
With one API process (N = 1) none of this runs: its relay settles every command, and wakes
the waiters in-process (`CommandService.announce` off, no Listener; runtime.start_wakeups).
The transaction that changes a command announces it: acks through the settling statement
itself (`repositories.commands.settle_many(..., notify=...)`, one round trip), expiries and
forced outcomes through `announce()`. PostgreSQL delivers a NOTIFY at COMMIT, never before
and never for a rolled-back transaction, so a woken waiter always finds the committed outcome.
Each process runs one `Listener` thread (a `storage.listen.ChannelListener`) holding a
connection in `LISTEN`, which hands every notification to its in-process `Notifier`.

Nothing is lost to ordering: a waiter registers its watch *before* it reads the command
(notify.py), so a NOTIFY that arrives before the watch exists is covered by that read, and
one that arrives after it wakes the watch. Notifications sent while a listener is
reconnecting are lost, so after every (re)connect it wakes every watch to re-read.

The payload is JSON `{"o": origin, "id": command id, "c": changed fields or null}`. The
settling process wakes its own waiters directly (no round trip) and its listener skips
notifications of its own origin; a change too big for NOTIFY's 8000-byte limit goes without
`c`, and its waiters re-read the row.

Example:
    with engine.begin() as conn:                       # the transaction that expires them
        expired = repo.expire_due(conn, ...)
        announce(conn, notifier.origin, dict.fromkeys(expired))   # delivered at COMMIT
    Listener(engine, notifier).start()                 # once per process
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Connection, Engine

from chelian.services.commands.notify import Notifier
from chelian.storage.listen import MAX_NOTIFY_BYTES as MAX_PAYLOAD_BYTES
from chelian.storage.listen import ChannelListener, notify

log = logging.getLogger("chelian.commands")

CHANNEL: Final = "chelian_commands"

WAKEUPS_LISTENING: Final = "command_wakeups_listening"
WAKEUPS_LOST: Final = "command_wakeups_lost"


def payload(origin: str, command_id: str, change: Mapping[str, Any] | None) -> str:
    body = json.dumps({"o": origin, "id": command_id, "c": change}, separators=(",", ":"))
    if len(body.encode()) > MAX_PAYLOAD_BYTES:
        body = json.dumps({"o": origin, "id": command_id, "c": None}, separators=(",", ":"))
    return body


def announce(conn: Connection, origin: str, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
    """NOTIFY every process that these commands changed (PostgreSQL only; one round trip for
    the lot). Call it inside the transaction that made the change."""
    if not changes or conn.dialect.name != "postgresql":
        return
    notify(conn, CHANNEL, [payload(origin, cid, change) for cid, change in changes.items()])


class Listener(ChannelListener):
    """One thread per process: LISTEN on CHANNEL, wake the matching watches of `notifier`."""

    def __init__(self, engine: Engine, notifier: Notifier, *, poll_s: float = 1.0) -> None:
        super().__init__(engine, CHANNEL, name="chelian-command-wakeups", logger=log,
                         events=(WAKEUPS_LISTENING, WAKEUPS_LOST), poll_s=poll_s)
        self.notifier = notifier

    def on_listening(self) -> None:
        self.notifier.notify_all()  # whatever was sent while nobody listened: re-read

    def on_lost(self) -> None:
        self.notifier.notify_all()  # waiters re-read rather than wait for a lost wake-up

    def deliver(self, raw: str) -> None:
        if self.notifier.origin in raw[:64]:
            return  # this process's own (checked before parsing: it is most of them with one process)
        try:
            body = json.loads(raw)
            origin, command_id, change = body["o"], body["id"], body.get("c")
        except (ValueError, KeyError, TypeError):
            return
        if origin == self.notifier.origin:
            return  # the settling code in this process has woken its waiters already
        self.notifier.notify([command_id], {command_id: change} if change else None)
