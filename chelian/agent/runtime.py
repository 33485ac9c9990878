"""The vehicle agent: samples a signal source, queues on disk, publishes over MQTT, obeys commands.

One `Agent` is one car. It is plain asyncio (aiomqtt on paho), so one process can host one
agent (`chelian agent`, in a car) or a thousand (`chelian sim`): the simulator runs this very
code, with a simulated source.

The life of a sample: `tick()` takes a snapshot from the source, the `ChangePicker` keeps
what is due (rate, deadband, heartbeat), and the message gets the next `seq` and the device
time and goes into the SQLite outbox. The sender publishes the outbox in order at QoS 1 and
removes a message only on PUBACK; while the link is down, messages simply stay there. So
online and offline are one code path, and "replay after reconnect" is just the sender
catching up, paced by a token bucket under the cloud's per-car rate limit.

On every (re)connect, in this order: subscribe to `commands` (so no command is missed),
publish `online` (retained; the CONNECT carried the retained `offline` will), the command
executor's key announcement, and a full snapshot of the current state *before* the backlog,
so the cloud's latest state is fresh at once (the backlog's older timestamps never overwrite
it: the cloud's latest state only moves forward in device time).

Commands are one injected collaborator, `CommandHandler.handle(payload) -> ack | None`
(`chelian.agent.commands.CommandExecutor` in production); its optional `tick()`,
`announcement()` and `tracking` (high-rate location tracking, `tracking.py`) are used when present.
With `commands_in_thread` (a real car, whose hooks and CAN confirmations take seconds) `handle`
and `tick` run in a worker thread, one at a time, while sampling and publishing go on; the
simulator's instant actuators run inline.

Example:
    agent = Agent(vin, LinkSettings("cloud.example.com", 1883, vin, secret), source,
                  QueueDB(data_dir / "queue.db").outbox(vin), commands=executor)
    await agent.run(rate_hz=1.0)      # until agent.stop() (from another task)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt

from chelian.agent.publisher import ChangePicker, PolicyTable
from chelian.agent.sources import EventSource, SignalSource
from chelian.agent.store_forward import Outbox, Queued, TokenBucket
from chelian.agent.tracking import TRACKED, Tracking
from chelian.link import topics
from chelian.link.codec import encode_event, encode_status, encode_telemetry

log = logging.getLogger(__name__)
Clock = Callable[[], int]
"""Device time, epoch milliseconds (the same shape as the command executor's clock)."""
MAX_PENDING_ACKS = 100


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class LinkSettings:
    host: str
    port: int
    username: str
    password: str
    mqtt_version: int = 4
    """4 = MQTT 3.1.1 (both brokers), 5 = MQTT 5."""
    keepalive_s: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    inflight: int = 20
    """Unacknowledged messages on the wire at once while catching up."""
    replay_rate_per_s: float = 40.0
    replay_burst: int = 400
    """80 % of the cloud's default 50 msg/s and burst 500, for arrival jitter."""
    timeout_s: float = 15.0


class _Stopping(Exception):
    """Raised inside a session to end it because `stop()` was called."""


class CommandHandler(Protocol):
    def handle(self, payload: bytes) -> bytes | None:
        """One `commands` message -> the ack to publish on `acks`, or None."""
        ...


class Agent:
    def __init__(self, vin: str, link: LinkSettings, source: SignalSource, outbox: Outbox, *,
                 policy: PolicyTable | None = None, commands: CommandHandler | None = None,
                 tracking: Tracking | None = None, clock: Clock = wall_ms,
                 monotonic: Callable[[], float] = time.monotonic, commands_in_thread: bool = False) -> None:
        self.vin, self.link, self.source, self.outbox, self.commands = vin, link, source, outbox, commands
        self.clock = clock
        self.tracking: Tracking = tracking or getattr(commands, "tracking", None) or Tracking()
        """High-rate location tracking (set by the executor's `set_tracking`): while it runs, every
        due tick carries position, heading and speed, and `run()` samples at least that often."""
        self.picker = ChangePicker(policy or PolicyTable.standard())
        self.bucket = TokenBucket(link.replay_rate_per_s, link.replay_burst, monotonic)
        self.online = threading.Event()
        """Connected and announced; readable from any thread."""
        self.delivered = 0
        self.connects = 0
        self._topics = {ch: topics.vehicle_topic(vin, ch) for ch in topics.CHANNELS}
        self._wake = asyncio.Event()
        self._acks: deque[bytes] = deque(maxlen=MAX_PENDING_ACKS)
        self._client: aiomqtt.Client | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._stopped: asyncio.Event | None = None
        self._last_command_tick_ms = 0
        self._rng = random.Random(vin)
        self.commands_in_thread = commands_in_thread
        self._commands_busy = asyncio.Lock()
        self._command_ticking: asyncio.Task[None] | None = None

    # --- sampling ---------------------------------------------------------------------------

    def tick(self, *, commands: bool = True) -> int:
        """Sample the source once and queue what is due; returns how many messages were queued.

        `commands=False` leaves the executor's own tick to the caller (`_command_tick`)."""
        now = self.clock()
        queued = 0
        forced = TRACKED if self.tracking.due(now) else ()
        signals = self.picker.select(self.source.snapshot(), now / 1000, forced)
        if signals:
            seq = self.outbox.next_seq(topics.TELEMETRY)
            self.outbox.append(topics.TELEMETRY, seq, now, encode_telemetry(seq, now, signals))
            queued += 1
        if isinstance(self.source, EventSource):
            for kind, data in self.source.drain_events():
                seq = self.outbox.next_seq(topics.EVENTS)
                self.outbox.append(topics.EVENTS, seq, now, encode_event(seq, now, kind, data))
                queued += 1
        if commands and self._command_tick_due(now):
            self._acks.extend(self.commands.tick())  # type: ignore[union-attr]
        self.outbox.db.maybe_commit()
        if queued or self._acks:
            self._wake.set()
        return queued

    def _command_tick_due(self, now: int) -> bool:
        if getattr(self.commands, "tick", None) is None or now - self._last_command_tick_ms < 1000:
            return False
        self._last_command_tick_ms = now
        return True

    async def _command_tick(self) -> None:
        """The executor's tick in the worker thread (parked immobilise commands may act)."""
        try:
            acks = await self._in_commands_thread(self.commands.tick)  # type: ignore[union-attr]
        except Exception:  # logged like a failed sample; the next tick tries again
            log.exception("agent_command_tick_failed vin=%s", self.vin)
            return
        if acks:
            self._acks.extend(acks)
            self._wake.set()

    async def _in_commands_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._commands_busy:
            return await asyncio.to_thread(fn, *args)

    # --- the connection ---------------------------------------------------------------------

    async def run(self, rate_hz: float | None = 1.0) -> None:
        """Connect (and reconnect, with back-off) until `stop()`; tick at `rate_hz` if given."""
        self._stopped = asyncio.Event()
        ticker = asyncio.create_task(self._tick_forever(rate_hz)) if rate_hz else None
        delay = self.link.reconnect_min_s
        try:
            while not self._stopping:
                try:
                    await self._session()
                    delay = self.link.reconnect_min_s
                except* (aiomqtt.MqttError, OSError) as group:
                    log.info("agent_link_down vin=%s error=%s", self.vin, group.exceptions[0])
                except* _Stopping:
                    pass
                finally:
                    self.online.clear()
                    self._client = None
                if not self._stopping:  # jitter, so a fleet that lost its broker does not return at once
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop_requested.wait(),
                                               delay * self._rng.uniform(0.5, 1.0))
                    delay = min(self.link.reconnect_max_s, delay * 2)
        finally:
            if ticker is not None:
                ticker.cancel()
            if self._command_ticking is not None:
                self._command_ticking.cancel()
            self.outbox.db.commit()
            self._stopped.set()

    async def _tick_forever(self, rate_hz: float) -> None:
        deadline = time.monotonic()
        while True:
            try:
                self.tick(commands=not self.commands_in_thread)
                ticking = self._command_ticking
                if (self.commands_in_thread and (ticking is None or ticking.done())
                        and self._command_tick_due(self.clock())):
                    self._command_ticking = asyncio.create_task(self._command_tick())  # sampling goes on
            except Exception:  # a source hiccup must not end sampling for good
                log.exception("agent_tick_failed vin=%s", self.vin)
            deadline += self.tick_period_s(rate_hz)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    def tick_period_s(self, rate_hz: float) -> float:
        """Seconds between samples: 1 / rate_hz, or the tracking interval when that is shorter."""
        tracking = self.tracking.interval_s(self.clock())
        return 1.0 / rate_hz if tracking is None else min(1.0 / rate_hz, tracking)

    def _client_for(self) -> aiomqtt.Client:
        link = self.link
        v5 = link.mqtt_version == 5
        client = aiomqtt.Client(
            link.host, link.port, username=link.username, password=link.password, identifier=self.vin,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else True, keepalive=link.keepalive_s, timeout=link.timeout_s,
            will=aiomqtt.Will(self._topics[topics.STATUS], encode_status(False), qos=1, retain=True),
            max_inflight_messages=link.inflight)
        client.pending_calls_threshold = link.inflight + MAX_PENDING_ACKS  # a full window is normal
        return client

    async def _session(self) -> None:
        client = self._client_for()
        try:
            await self._connected_session(client)
        finally:  # aiomqtt leaves a lost link's error unread when the session ended otherwise
            disconnected = client._disconnected  # noqa: SLF001
            if disconnected.done() and not disconnected.cancelled():
                disconnected.exception()

    async def _connected_session(self, client: aiomqtt.Client) -> None:
        async with client:
            self._client = client
            if self.commands is not None:
                await client.subscribe(self._topics[topics.COMMANDS], qos=1)
            await client.publish(self._topics[topics.STATUS], encode_status(True, self.clock()), qos=1,
                                 retain=True)
            announcement = getattr(self.commands, "announcement", None)
            if announcement is not None:
                await client.publish(self._topics[topics.ACKS], announcement(), qos=1)
            await self._publish_snapshot(client)
            self.connects += 1
            self.online.set()
            log.info("agent_connected vin=%s backlog=%d", self.vin, len(self.outbox))
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._send_forever(client))
                tasks.create_task(self._listen(client))
                tasks.create_task(self._until_stop_requested())

    async def _until_stop_requested(self) -> None:
        await self._stop_requested.wait()
        raise _Stopping  # ends the session's task group; leaving `async with` sends DISCONNECT

    async def _publish_snapshot(self, client: aiomqtt.Client) -> None:
        now = self.clock()
        signals = self.picker.everything(self.source.snapshot(), now / 1000)
        if signals:
            seq = self.outbox.next_seq(topics.TELEMETRY)
            self.bucket.take(1)
            await client.publish(self._topics[topics.TELEMETRY], encode_telemetry(seq, now, signals), qos=1)
            self.delivered += 1

    async def _send_forever(self, client: aiomqtt.Client) -> None:
        """Publish the outbox oldest first, a window at a time, paced; remove what is acknowledged."""
        while True:
            while self._acks:
                await client.publish(self._topics[topics.ACKS], self._acks[0], qos=1)
                self._acks.popleft()
            tokens = self.bucket.available()
            rows = self.outbox.peek(min(self.link.inflight, tokens)) if tokens else []
            if not rows:
                if tokens and not self._acks:
                    self._wake.clear()
                    if not len(self.outbox):
                        await self._wake.wait()
                else:
                    await asyncio.sleep(self.bucket.wait_s())
                continue
            self.bucket.take(len(rows))
            await self._publish_window(client, rows)

    async def _publish_window(self, client: aiomqtt.Client, rows: list[Queued]) -> None:
        if len(rows) == 1:
            results: list[Any] = [await client.publish(self._topics[rows[0].channel], rows[0].payload, qos=1)]
        else:  # tasks start in order, so paho writes the PUBLISH packets in queue order
            sends = (client.publish(self._topics[r.channel], r.payload, qos=1) for r in rows)
            results = await asyncio.gather(*sends, return_exceptions=True)
        done = [r.id for r, res in zip(rows, results, strict=True) if res is None]
        self.outbox.remove(done)
        self.outbox.db.maybe_commit()
        self.delivered += len(done)
        failure = next((res for res in results if isinstance(res, BaseException)), None)
        if failure is not None:
            raise failure

    async def _listen(self, client: aiomqtt.Client) -> None:
        """Run commands; ends with MqttError when the link drops (which ends the session)."""
        async for message in client.messages:
            if self.commands is None or not isinstance(message.payload, bytes | bytearray):
                continue
            if self.commands_in_thread:
                ack = await self._in_commands_thread(self.commands.handle, bytes(message.payload))
            else:
                ack = self.commands.handle(bytes(message.payload))
            if ack is not None:
                await client.publish(self._topics[topics.ACKS], ack, qos=1)
            self.tick(commands=not self.commands_in_thread)  # the cloud sees what the command changed now

    # --- control ----------------------------------------------------------------------------

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Switch off like a car should: `offline` (retained, with ts), DISCONNECT, and `run()` returns.

        Queued messages stay on disk for the next start.
        """
        self._stopping = True
        client = self._client
        if client is not None:  # connected: `online` may be out already while the snapshot follows
            try:
                await client.publish(self._topics[topics.STATUS], encode_status(False, self.clock()), qos=1,
                                     retain=True, timeout=timeout_s)
            except aiomqtt.MqttError:
                pass  # the link went away meanwhile: the broker publishes the will instead
        self._stop_requested.set()
        if self._stopped is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout_s)
        self.outbox.db.commit()

    def drop_link(self) -> None:
        """Lose the connection without DISCONNECT (a tunnel): the broker publishes the will."""
        client = self._client
        sock = client._client.socket() if client is not None else None  # noqa: SLF001 - no public handle
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
