"""The cloud's MQTT side of commands: send when the car is there, resend until answered, expire.

One paho client (the platform's service account) and one worker thread. paho's network
thread only enqueues; the worker writes state and acknowledges, in arrival order, so an ack's
PUBACK goes out only after its outcome is committed (a relay killed mid-way gets the ack again
from its persistent session, and settling twice is a no-op).

* **Sending.** A new command is published at QoS 1 to `v1/vehicles/{vin}/commands` at once
  if the car is online (and is then recorded `sent` by its own INSERT: `service.online`),
  by the thread that created it (no hop through the worker); otherwise it stays `queued`.
  Online/offline comes from a plain (not shared) subscription to `v1/vehicles/+/status`, so
  the broker's retained messages tell a freshly started relay every car's state. When a car
  comes online, its queued and unanswered sent commands are (re)sent, oldest first; cars
  subscribe to `commands` before they publish `online` (docs/protocol.md), so nothing is sent
  into the void.
* **Resending.** A sent command without an ack is resent every `resend_after_ms` while the
  car is online, until it expires. Resends are byte-identical envelopes: the car answers them
  from memory and never acts twice.
* **Acks** arrive on `$share/{group}/v1/vehicles/+/acks` (where the broker shares) so several
  relays split them; see acks.py for what is checked.
* **Expiry.** Every `sweep_interval_s` the worker expires overdue commands (lifecycle.py says
  when) and wakes their waiters.
* **Several relays.** Every API process of `chelian serve --workers N` runs a relay, so a new
  command leaves from the process that created it, without a hop; their acks are split by the
  shared subscription, and wakeups.py wakes a waiter in whichever process it is. Only the
  `leader` (the main process's relay) sweeps and resends; when a car comes online, followers
  send only its never-sent (`queued`) commands: N relays resending would send everything N times.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from chelian.ingest.worker import BrokerEndpoint, make_client
from chelian.link import topics
from chelian.link.codec import WireError, decode_status
from chelian.services.commands.acks import handle_acks
from chelian.services.commands.lifecycle import QUEUED, SENT, UNSETTLED, CommandService
from chelian.storage.db import now_ms
from chelian.storage.repositories import vehicles

log = logging.getLogger("chelian.commands")

COMMAND_SENT: Final = "command_sent"
RELAY_CONNECTED: Final = "relay_connected"
RELAY_DISCONNECTED: Final = "relay_disconnected"
RELAY_FAILED: Final = "relay_failed"

SHARE_GROUP: Final = "chelian-commands"
SESSION_EXPIRY_S: Final = 24 * 3600
BATCH_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class _Send:
    command_id: str
    vin: str
    payload: bytes
    recorded: bool
    """Recorded `sent` by its INSERT already (the car was online): publish, no UPDATE."""


@dataclass(frozen=True, slots=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_ms: int


def tcp_no_delay(_client: mqtt.Client, _userdata: object, sock: socket.socket) -> None:
    """Switch off Nagle's algorithm: a command or a PUBACK is one small write that must leave
    now, not after the peer's delayed ACK (measured: 40 ms -> 1 ms per MQTT round trip)."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class CommandRelay:
    def __init__(self, service: CommandService, endpoint: BrokerEndpoint, *,
                 client_id: str = "chelian-commands-0", sweep_interval_s: float = 0.5,
                 resend_after_ms: int = 5_000, session_expiry_s: int = SESSION_EXPIRY_S,
                 leader: bool = True) -> None:
        self.service = service
        self.leader = leader
        self.endpoint = endpoint
        self.client_id = client_id
        self.sweep_interval_s = sweep_interval_s
        self.resend_after_ms = resend_after_ms
        self.session_expiry_s = session_expiry_s
        self.online: set[str] = set()
        self._jobs: queue.SimpleQueue[_Send | _Inbound | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._generation = 0
        self._worker = threading.Thread(target=self._run, name="chelian-command-relay", daemon=True)
        persistent = {} if endpoint.mqtt5 else {"clean_session": False}
        self._client = make_client(client_id, endpoint, manual_ack=True, **persistent)
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)
        self._client.on_socket_open = tcp_no_delay
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(0.2, 5)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> CommandRelay:
        kwargs: dict = {}
        if self.endpoint.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            kwargs = {"clean_start": False, "properties": props}
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=30, **kwargs)
        self._client.loop_start()
        self._worker.start()
        self.service.online = self.online.__contains__
        self.service.dispatch = self.submit
        if not self._connected.wait(timeout_s):
            self.stop()
            raise ConnectionError(f"the command relay could not connect to the broker at "
                                  f"{self.endpoint.host}:{self.endpoint.port} within {timeout_s:.0f}s")
        return self

    def stop(self) -> None:
        if self.service.dispatch == self.submit:
            self.service.dispatch = None
            self.service.online = None
        self._stop.set()
        self._jobs.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> CommandRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, command_id: str, vin: str, payload: bytes, recorded: bool = False) -> None:
        """A new command (the service's dispatch hook): sent at once if its car is online.
        `recorded`: the service found the car online (`service.online`) and recorded the
        command `sent` already; then the caller's thread publishes it (paho's publish is
        thread-safe): one thread hand-off fewer per command than through the worker."""
        if recorded and self._to_car(vin, payload):
            log.info("%s id=%s", COMMAND_SENT, command_id)
            return
        self._jobs.put(_Send(command_id, vin, payload, recorded))

    def _to_car(self, vin: str, payload: bytes) -> bool:
        """Publish an envelope to its car if the car is online (from any thread); False if not."""
        if vin not in self.online:
            return False
        self._client.publish(topics.vehicle_topic(vin, topics.COMMANDS), payload, qos=1)
        return True

    # --- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.error("%s reason=%s", RELAY_FAILED, reason_code)
            return
        acks = topics.all_vehicles(topics.ACKS)
        if self.endpoint.share_group:
            acks = topics.shared(acks, SHARE_GROUP)
        self._generation += 1
        client.subscribe([(acks, 1), (topics.all_vehicles(topics.STATUS), 1)])
        log.info("%s client_id=%s", RELAY_CONNECTED, self.client_id)
        self._connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props=None) -> None:  # type: ignore[no-untyped-def]
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("%s reason=%s", RELAY_DISCONNECTED, reason_code)

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:  # type: ignore[no-untyped-def]
        self._jobs.put(_Inbound(msg.topic, msg.payload, msg.mid, msg.qos, self._generation, now_ms()))

    # --- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        next_sweep = time.monotonic()
        while not self._stop.is_set():
            jobs: list[_Send | _Inbound] = []
            try:
                job = self._jobs.get(timeout=max(next_sweep - time.monotonic(), 0.001))
                while job is not None:
                    jobs.append(job)
                    job = self._jobs.get_nowait() if len(jobs) < BATCH_MAX else None
            except queue.Empty:
                pass
            self._handle(jobs)
            if self.leader and time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + self.sweep_interval_s
                self._retrying(self._sweep)

    def _handle(self, jobs: list[_Send | _Inbound]) -> None:
        """New commands are published together and marked sent in one transaction; consecutive
        acks are settled together; PUBACKs go out in arrival order, each after its commit."""
        sends = [j for j in jobs if isinstance(j, _Send)]
        if sends:
            targets = [(j.command_id, j.vin, j.payload) for j in sends]
            recorded = {j.command_id for j in sends if j.recorded}
            self._retrying(lambda: self._publish(targets, recorded=recorded))
        acks: list[_Inbound] = []
        for job in jobs:
            if not isinstance(job, _Inbound):
                continue
            parsed = topics.parse_topic(job.topic)
            if parsed is not None and parsed[1] == topics.ACKS:
                acks.append(job)
                continue
            if not self._settle(acks):
                return
            acks = []
            if parsed is not None and parsed[1] == topics.STATUS:
                if not self._retrying(lambda vin=parsed[0], j=job: self._status(vin, j.payload)):
                    return  # stopping: unacked messages come back from the broker session
            self._puback([job])
        self._settle(acks)

    def _settle(self, acks: list[_Inbound]) -> bool:
        if not acks:
            return True
        batch = [(topics.parse_topic(j.topic)[0], j.payload, j.received_ms) for j in acks]  # type: ignore[index]
        if not self._retrying(lambda: handle_acks(self.service, batch)):
            return False
        self._puback(acks)
        return True

    def _puback(self, jobs: list[_Inbound]) -> None:
        for job in jobs:
            if job.qos > 0 and job.generation == self._generation:  # never across a reconnect
                self._client.ack(job.mid, job.qos)

    def _retrying(self, step: Callable[[], None]) -> bool:
        """Run `step` until it succeeds (storage hiccups); False if asked to stop meanwhile."""
        delay = 0.1
        while True:
            try:
                step()
                return True
            except Exception as exc:
                log.error("%s error=%r retry_in_s=%.1f", RELAY_FAILED, exc, delay)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 5.0)

    def _status(self, vin: str, payload: bytes) -> None:
        try:
            online = decode_status(vin, payload).online
        except WireError:
            return
        if not online:
            self.online.discard(vin)
            return
        self.online.add(vin)
        with self.service.autocommit.connect() as conn:
            vehicle = vehicles.by_vin(conn, vin)
        if vehicle is not None:
            # A follower sends only what was never sent: a command its process created while it
            # still thought the car offline, perhaps after the leader had flushed. The rest
            # (resends) is the leader's, or every reconnect would resend N times.
            states = UNSETTLED if self.leader else (QUEUED,)
            self._publish(self.service.pending(vehicle_id=vehicle.id, states=states))

    def _publish(self, targets: list[tuple[str, str, bytes]], *, recorded: Collection[str] = ()) -> None:
        """Publish to the cars that are online; the rest stay as they are until theirs comes.
        `recorded`: commands recorded `sent` already (new ones, by their INSERT): no UPDATE;
        one whose car went offline meanwhile is resent when it is back, like any unanswered one."""
        sent, sent_ms = [], now_ms()  # before publishing: an ack may beat the bookkeeping
        for command_id, vin, payload in targets:
            if not self._to_car(vin, payload):
                continue
            if command_id in recorded:
                log.info("%s id=%s", COMMAND_SENT, command_id)
            else:
                sent.append(command_id)
        if sent:
            for command_id in self.service.mark_sent(sent, sent_ms):
                log.info("%s id=%s", COMMAND_SENT, command_id)

    def _sweep(self) -> None:
        self.service.expire_due()
        if self.online:
            due = now_ms() - self.resend_after_ms
            self._publish(self.service.pending(states=(SENT,), sent_before_ms=due))
