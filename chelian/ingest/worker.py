"""The ingest worker: an MQTT consumer that acks each message only after it is committed.

At-least-once, end to end:
* the worker's broker session is persistent (fixed client id, clean start off, long session
  expiry), so messages published while it is down wait in the broker;
* paho runs with `manual_ack=True`: PUBACK for a message is sent only after the batch that
  holds it is committed, so a worker killed mid-batch gets those messages again;
* storage skips (vehicle, seq) pairs it already has, so a redelivery is not stored twice.

Scaling out: every worker joins the shared subscription group
`$share/<group>/v1/vehicles/+/telemetry`, and the broker splits the stream between them
(Mosquitto, EMQX and HiveMQ do this for MQTT 3.1.1 and 5 clients; chelian's embedded
broker implements it too).

Threads: paho's network thread only enqueues; a prepare thread forms batches (up to
`batch_max` messages or `batch_wait_ms`) and validates them while a commit thread writes
the previous batch, then acks in arrival order (MQTT requires PUBACKs in the order the
PUBLISHes arrived). Validation is Python and the commit mostly waits on the database, so
the two overlap even under the GIL.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chelian.ingest.batch import Batch, Inbound
from chelian.ingest.processor import Processor
from chelian.link import topics
from chelian.storage.db import now_ms

log = logging.getLogger("chelian.ingest")

SUBSCRIBED_CHANNELS = (topics.TELEMETRY, topics.EVENTS, topics.STATUS)
SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    host: str
    port: int
    username: str
    password: str
    mqtt5: bool = True
    share_group: str | None = "chelian-ingest"


class AcyclicMatcher(MQTTMatcher):
    """paho's per-topic callback table, minus a reference cycle per received message.

    paho looks every message up in this table (`message_callback_add` filters), and its
    `iter_match` walks the filter tree with a recursive closure: a function that holds itself
    through a cell. So each message left five objects that only the cycle collector frees;
    in the API process those were most of what filled the young generation (bench/commands.py
    at 200 commands/s), and each young collection there stalled every request for ~30 ms.
    chelian registers no filters, so a lookup in an empty table answers at once, with nothing
    left behind; with filters, paho's own walk runs."""

    def iter_match(self, topic: str):  # type: ignore[no-untyped-def]
        if not self._root._children and self._root._content is None:
            return iter(())
        return super().iter_match(topic)


def make_client(client_id: str, endpoint: BrokerEndpoint, **kwargs) -> mqtt.Client:  # type: ignore[no-untyped-def]
    """The one place chelian builds a paho client (a seam tests and tools can reuse)."""
    protocol = mqtt.MQTTv5 if endpoint.mqtt5 else mqtt.MQTTv311
    extra = {} if endpoint.mqtt5 else {"clean_session": kwargs.pop("clean_session", True)}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **extra,
                         **kwargs)
    if isinstance(getattr(client, "_on_message_filtered", None), MQTTMatcher):  # paho's private table
        client._on_message_filtered = AcyclicMatcher()
    client.username_pw_set(endpoint.username, endpoint.password)
    return client


class IngestWorker:
    def __init__(self, processor: Processor, endpoint: BrokerEndpoint, *, client_id: str = "chelian-ingest-0",
                 batch_max: int = 2000, batch_wait_ms: int = 50,
                 session_expiry_s: int = SESSION_EXPIRY_S) -> None:
        self.processor = processor
        self.endpoint = endpoint
        self.client_id = client_id
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_ms / 1000
        self.session_expiry_s = session_expiry_s
        self._inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._generation = 0
        self._prepared: queue.Queue[tuple[list[Inbound], Batch] | None] = queue.Queue(maxsize=2)
        self._in_hand = 0
        self._threads = [
            threading.Thread(target=self._prepare_loop, name="chelian-ingest-prepare", daemon=True),
            threading.Thread(target=self._commit_loop, name="chelian-ingest-commit", daemon=True)]
        self._client = self._build_client()
        self.last_error: BaseException | None = None

    def _build_client(self) -> mqtt.Client:
        persistent = {} if self.endpoint.mqtt5 else {"clean_session": False}
        client = make_client(self.client_id, self.endpoint, manual_ack=True, **persistent)
        # Unacked messages may be many (a whole batch): let the client hold them all.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(0.2, 5)
        return client

    # --- lifecycle -------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> IngestWorker:
        props = None
        if self.endpoint.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            props.ReceiveMaximum = 65535
        kwargs = {"clean_start": False, "properties": props} if self.endpoint.mqtt5 else {}
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=30, **kwargs)
        self._client.loop_start()
        for thread in self._threads:
            thread.start()
        if not self._connected.wait(timeout_s):
            self.stop()
            raise ConnectionError(f"ingest could not connect to the broker at "
                                  f"{self.endpoint.host}:{self.endpoint.port} within {timeout_s:.0f}s")
        return self

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect (the session stays on the broker)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> IngestWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("ingest_connect_refused reason=%s", reason_code)
            return
        filters = [topics.all_vehicles(c) for c in SUBSCRIBED_CHANNELS]
        if self.endpoint.share_group:
            filters = [topics.shared(f, self.endpoint.share_group) for f in filters]
        self._generation += 1
        client.subscribe([(f, 1) for f in filters])
        log.info("ingest_connected client_id=%s filters=%s", self.client_id, filters)
        self._connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("ingest_disconnected reason=%s", reason_code)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:  # type: ignore[no-untyped-def]
        self._in_hand += 1
        self._inbox.put(Inbound(msg.mid, msg.qos, msg.topic, msg.payload, now_ms(), self._generation))

    # --- writer thread ---------------------------------------------------------------------

    def _next_batch(self) -> list[Inbound]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            try:
                batch.append(self._inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _prepare_loop(self) -> None:
        """Stage 1: form batches and validate them while stage 2 commits the previous one."""
        while not (self._stop.is_set() and self._inbox.empty()):
            messages = self._next_batch()
            if messages:
                batch = self._retrying(lambda m=messages: self.processor.prepare(m))
                if batch is None:
                    break
                self._prepared.put((messages, batch))
        self._prepared.put(None)

    def _commit_loop(self) -> None:
        """Stage 2: commit in arrival order, then ack (never before the commit)."""
        while (item := self._prepared.get()) is not None:
            messages, batch = item
            if self._retrying(lambda m=messages, b=batch: self.processor.commit(m, b)) is None:
                return
            generation = self._generation
            for msg in messages:
                # A packet id from an earlier connection may already name another message:
                # never ack across a reconnect (the broker redelivers those, and we dedupe).
                if msg.qos > 0 and msg.generation == generation:
                    self._client.ack(msg.mid, msg.qos)
            self._in_hand -= len(messages)

    def _retrying(self, step):  # type: ignore[no-untyped-def]
        """Run `step` until it succeeds; None if stopping while storage is still failing
        (the broker keeps every unacked message, so nothing is lost)."""
        delay = 0.1
        while True:
            try:
                return step()
            except Exception as exc:  # transient storage failure: keep the batch, retry
                self.last_error = exc
                log.error("ingest_write_retry error=%r delay_s=%.1f", exc, delay)
                if self._stop.wait(delay) and self._stop.is_set():
                    return None
                delay = min(delay * 2, 10.0)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once every received message is committed (for tests and orderly shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._in_hand <= 0:
                return True
            time.sleep(0.01)
        return False
