"""The live map across processes: every ingest process NOTIFYs what it committed, every API
process LISTENs and feeds its PushHub (PostgreSQL only).

Why: ingest scales out (`chelian ingest` workers share the MQTT stream) and so does the API
(`chelian serve --workers N`), so the process holding a browser's WebSocket has usually not
ingested the car it wants to show, and an API worker ingests nothing at all.

Publishing: `LivePublisher` is an ingest CommitObserver. After each committed batch it takes
what the map needs of it (`push.updates_of`: per car lat, lon, heading, speed, ts_ms, online,
alert; one entry per car per batch) and sends it with `pg_notify` on CHANNEL, in one autocommit
statement after the commit (so nothing is announced that could still roll back). The payload is
compact JSON keyed by vehicle id, `{"17": {"lat": 42.5, "lon": 1.52, ...}, ...}`, cut into
chunks under NOTIFY's 8000-byte limit (~60 cars each); the VIN and who may see the car are
looked up by the receiving hub, as for a local commit, so isolation stays in `viewers_of`.

Listening: `LiveListener`, one thread per API process on a connection of its own, hands each
notification to the hub's `route()`; with nobody subscribed it does not even parse them.

One path on PostgreSQL: the main process's hub is fed by the listener too, not also by its own
ingest (runtime.py leaves the hub out of the ingest observers there). Every process then shows
exactly the same stream, in the order PostgreSQL delivered it, with no origin bookkeeping and
no duplicate per batch; the price is a loop-back through the server for the main process's own
commits (one statement per batch, which the other processes need anyway, plus a decode here).

Lost updates: notifications sent while a listener reconnects are lost. The map heals on its
own (a moving car reports every second; a reconnecting browser gets a fresh snapshot), so the
listener does not try to replay them.

Example:
    processor.observers.append(LivePublisher(engine))    # every ingest process
    LiveListener(engine, hub).start()                     # every API process
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Final

from sqlalchemy import Engine, create_engine

from chelian.ingest.batch import WriteResult
from chelian.storage.db import is_postgres
from chelian.storage.listen import MAX_NOTIFY_BYTES as MAX_PAYLOAD_BYTES
from chelian.storage.listen import ChannelListener, notify
from chelian.web.push import PushHub, Update, updates_of

log = logging.getLogger("chelian.web.feed")

CHANNEL: Final = "chelian_live"

LIVE_FEED_LISTENING: Final = "live_feed_listening"
LIVE_FEED_LOST: Final = "live_feed_lost"
LIVE_FEED_BAD_PAYLOAD: Final = "live_feed_bad_payload"

def payloads(updates: Mapping[int, Update], limit: int = MAX_PAYLOAD_BYTES) -> list[str]:
    """`vehicle_id -> update` as JSON objects of at most `limit` bytes, each car in one of them."""
    out: list[str] = []
    chunk: list[str] = []
    size = 2  # the braces
    for vehicle_id, update in updates.items():
        entry = f'"{vehicle_id}":{json.dumps(update, separators=(",", ":"))}'
        cost = len(entry.encode()) + (1 if chunk else 0)
        if size + cost > limit and chunk:
            out.append("{" + ",".join(chunk) + "}")
            chunk, size, cost = [], 2, cost - 1
        if size + cost > limit:
            log.warning("%s vehicle_id=%d bytes=%d: too big to announce", LIVE_FEED_BAD_PAYLOAD,
                        vehicle_id, cost)
            continue
        chunk.append(entry)
        size += cost
    if chunk:
        out.append("{" + ",".join(chunk) + "}")
    return out


def parse(raw: str) -> dict[int, Update]:
    """One notification back into `vehicle_id -> update` (empty if it is not one of ours)."""
    try:
        body = json.loads(raw)
        return {int(vehicle_id): update for vehicle_id, update in body.items() if isinstance(update, dict)}
    except (ValueError, AttributeError, TypeError):
        log.warning("%s bytes=%d", LIVE_FEED_BAD_PAYLOAD, len(raw))
        return {}


class LivePublisher:
    """Ingest CommitObserver: NOTIFY every API process of the map-relevant part of a commit."""

    def __init__(self, engine: Engine) -> None:
        # A pool of its own, autocommit and without the pre-ping, so a batch costs one round trip
        # (not a ping too). After a database restart the first NOTIFY fails and invalidates the
        # connection: that batch is not announced (the processor logs it), the next one is.
        self.engine = create_engine(engine.url, pool_size=1, max_overflow=1, pool_pre_ping=False,
                                    isolation_level="AUTOCOMMIT")
        self.sent = 0
        """Notifications sent so far."""

    def close(self) -> None:
        self.engine.dispose()

    def on_committed(self, result: WriteResult) -> None:
        chunks = payloads(updates_of(result))
        if not chunks:
            return
        with self.engine.connect() as conn:
            notify(conn, CHANNEL, chunks)
        self.sent += len(chunks)


def live_publisher(engine: Engine) -> LivePublisher | None:
    """The publishing observer for an ingest process on PostgreSQL; None on SQLite, where the
    one process's hub is fed by its own ingest directly."""
    return LivePublisher(engine) if is_postgres(engine) else None


class LiveListener(ChannelListener):
    """One thread per API process: LISTEN on CHANNEL and route what arrives through `hub`."""

    def __init__(self, engine: Engine, hub: PushHub, *, poll_s: float = 1.0) -> None:
        super().__init__(engine, CHANNEL, name="chelian-live-feed", logger=log,
                         events=(LIVE_FEED_LISTENING, LIVE_FEED_LOST), poll_s=poll_s)
        self.hub = hub
        self.received = 0
        """Notifications received so far (parsed or not)."""

    def deliver(self, raw: str) -> None:
        self.received += 1
        if self.hub.watched:  # with nobody subscribed, not even parsed
            self._route(raw)

    def _route(self, raw: str) -> None:
        try:
            self.hub.route(parse(raw))
        except Exception:  # e.g. the viewers lookup failed: this batch is lost, not the listener
            log.exception("%s bytes=%d", LIVE_FEED_LOST, len(raw))


def start_live_listener(engine: Engine, hub: PushHub) -> LiveListener | None:
    """On PostgreSQL, feed `hub` from every ingest process; SQLite has one process: None."""
    return LiveListener(engine, hub).start() if is_postgres(engine) else None
