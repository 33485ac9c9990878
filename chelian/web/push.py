"""The live map's push hub: an ingest CommitObserver that coalesces car updates per subscriber.

Why coalesce on the server: 1 000 cars at 1 Hz are 1 000 messages a second; a browser that
received each one as its own WebSocket frame would spend its time parsing instead of
drawing. Each subscriber instead holds `pending: vin -> partial update`; a newer update of a
car merges over the older one (`dict.update`), and the connection flushes the whole dict as
one frame every `interval_s` (see routes.py). So a car costs at most one entry per flush
however fast it reports, and a quiet fleet costs nothing.

Why per subscriber, keyed by user: isolation is decided once, here, when an update is
routed: a row is only ever put into the pending dicts of subscriptions whose user may see the
car, i.e. its owner and the operators of its fleet (`vehicles.viewers_of`, the access rule
read from the car's side). A stranger's subscription never sees the VIN at all.

Who may see a car is cached for ACCESS_CACHE_S: a car taken out of a fleet (by
`chelian fleet remove-vehicle`, often another process) stops reaching the fleet's operators
within that time, while the REST API refuses them at once.

Where updates come from: on SQLite, this process's ingest (the hub is one of its
CommitObservers); on PostgreSQL, every ingest process through NOTIFY (feed.py), so every API
process sees every car whichever process ingested it.

Threads: `on_committed` / `route` run on the ingest worker's (or feed listener's) thread,
the flush on the web server's event loop; a `threading.Lock` guards the subscriber table and
each pending dict, and both sides hold it only to swap dicts, never for I/O.

Example:
    hub = PushHub(engine)
    sub = hub.subscribe(user_id=7)
    hub.on_committed(write_result)      # ingest thread
    sub.take()                          # {"1M8GD...": {"vin": ..., "lat": ..., ...}}
    hub.unsubscribe(sub)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from chelian.ingest.batch import WriteResult
from chelian.storage.repositories.vehicles import viewers_of

LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
HEADING, SPEED = "Vehicle.CurrentLocation.Heading", "Vehicle.Speed"
PUSHED_SIGNALS = {LAT: "lat", LON: "lon", HEADING: "heading", SPEED: "speed"}
"""What the map needs of a telemetry message; everything else stays on the car page."""
ALERT_EVENTS = frozenset({"crash_detected", "breakdown", "dtc_set", "airbag_deployed", "theft_alarm"})
"""Event types that turn a car's marker to the alert colour for ALERT_WINDOW_MS."""
ALERT_WINDOW_MS = 15 * 60_000
ACCESS_CACHE_S = 60.0
"""How long a vehicle -> viewers lookup is trusted; a fleet change is routed right after this."""

Update = dict[str, Any]


@dataclass(eq=False)
class Subscription:
    """One open push connection of one user; `take()` hands over what piled up since last time."""

    user_id: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pending: dict[str, Update] = field(default_factory=dict, repr=False)
    merged: int = 0
    """Updates folded into an earlier one of the same car before a flush (a measure of coalescing)."""

    def put(self, items: list[tuple[str, Update]]) -> None:
        """Merge (vin, update) pairs in; one lock round per commit, not per car."""
        with self._lock:
            pending = self._pending
            for vin, update in items:
                current = pending.get(vin)
                if current is None:
                    pending[vin] = update.copy()  # copied: the same update goes to every subscription
                else:
                    current.update(update)
                    self.merged += 1

    def take(self) -> dict[str, Update]:
        with self._lock:
            out, self._pending = self._pending, {}
        return out


class PushHub:
    """Routes newly committed rows to the subscriptions of everybody who may see each car."""

    def __init__(self, engine: Engine, clock: Any = time.monotonic) -> None:
        self.engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._by_user: dict[int, set[Subscription]] = {}
        self._viewers: dict[int, tuple[str, frozenset[int]]] = {}
        """vehicle_id -> (vin, ids of the users who may see it)."""
        self._viewers_loaded_at = clock()
        self._newest: dict[int, int] = {}
        """vehicle_id -> ts_ms of the newest position routed (older ones are not pushed)."""

    # --- subscriptions (event loop) ------------------------------------------------------

    def subscribe(self, user_id: int) -> Subscription:
        sub = Subscription(user_id)
        with self._lock:
            self._by_user.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._by_user.get(sub.user_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_user[sub.user_id]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._by_user.values())

    # --- ingest side (ingest thread) -----------------------------------------------------

    @property
    def watched(self) -> bool:
        """Whether anybody is subscribed (when nobody is, updates are not even decoded)."""
        with self._lock:
            return bool(self._by_user)

    def on_committed(self, result: WriteResult) -> None:
        if self.watched:  # nobody is looking: no lookups, no work
            self.route(updates_of(result))

    def route(self, updates: dict[int, Update]) -> None:
        """Put `vehicle_id -> update` into the subscriptions of whoever may see each car (the
        updates are completed with the VIN); from this process's ingest or from feed.py."""
        if not updates or not self.watched:
            return
        viewers = self._viewers_of(list(updates))
        by_user: dict[int, list[tuple[str, Update]]] = {}
        for vehicle_id, update in updates.items():
            found = viewers.get(vehicle_id)
            if found is not None and self._fresh(vehicle_id, update):
                vin, user_ids = found
                update["vin"] = vin
                for user_id in user_ids:
                    by_user.setdefault(user_id, []).append((vin, update))
        with self._lock:
            targets = [(sub, items) for user_id, items in by_user.items()
                       for sub in self._by_user.get(user_id, ())]
        for sub, items in targets:
            sub.put(items)

    def _fresh(self, vehicle_id: int, update: Update) -> bool:
        """Drop the position of an update older than one already routed; False if nothing is
        left. Ingest processes sharing the stream commit one car's messages in parallel, so
        their NOTIFYs can arrive out of order; the map, like latest_state, only moves forward."""
        ts_ms = update.get("ts_ms")
        if ts_ms is None:
            return True
        if ts_ms >= self._newest.get(vehicle_id, 0):
            self._newest[vehicle_id] = ts_ms
            return True
        for key in (*PUSHED_SIGNALS.values(), "ts_ms"):
            update.pop(key, None)
        if update.get("online") is True:  # said by that old message; a newer one said it already
            del update["online"]
        return bool(update)

    def _viewers_of(self, vehicle_ids: list[int]) -> dict[int, tuple[str, frozenset[int]]]:
        if self._clock() - self._viewers_loaded_at > ACCESS_CACHE_S:
            self._viewers, self._viewers_loaded_at = {}, self._clock()
        missing = [v for v in vehicle_ids if v not in self._viewers]
        if missing:
            with self.engine.connect() as conn:
                self._viewers.update(viewers_of(conn, missing))
        return self._viewers


def updates_of(result: WriteResult) -> dict[int, Update]:
    """vehicle_id -> the map-relevant fields in this commit (later rows win over earlier ones)."""
    out: dict[int, Update] = {}
    for row in result.new_telemetry:
        update = out.setdefault(row.vehicle_id, {})
        fresh = row.ts_ms >= update.get("ts_ms", 0)
        for path, key in PUSHED_SIGNALS.items():
            sample = row.samples.get(path)
            if sample is not None and sample[4] is not None and (fresh or key not in update):
                update[key] = sample[4]
        if fresh:
            update["ts_ms"] = row.ts_ms
            update["online"] = True  # it is talking to us right now
    for event in result.new_events:
        if event.type in ALERT_EVENTS:
            out.setdefault(event.vehicle_id, {})["alert"] = {"type": event.type, "ts_ms": event.ts_ms}
    for status in result.statuses:
        out.setdefault(status.vehicle_id, {})["online"] = status.online
    return out
