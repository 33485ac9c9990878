"""The embedded default broker: amqtt in a child process, with chelian's own rules.

Who may connect: a car (username = its VIN, password checked against the slow hash in the
database) or the platform's service account; nobody else, never anonymously. What they may
do: a car publishes only to `v1/vehicles/{its VIN}/{telemetry|events|status|acks}` and
subscribes only to `v1/vehicles/{its VIN}/commands`; the service account may use anything
under `v1/vehicles/`, including `$share/{group}/...` shared subscriptions.

It runs in its own process (`EmbeddedBroker(settings).start()`, or `python -m
chelian.link.broker`) because amqtt relays about twice as fast there as inside the API's
event loop. amqtt 0.12.1 also needed fixing where chelian relies on it (see ChelianBroker
and ChelianProtocolHandler); every fix is covered by tests/link/test_broker_acl.py or
tests/link/test_embedded_broker.py, so an amqtt upgrade that changes these internals fails
loudly instead of silently.

Example:
    with EmbeddedBroker(settings) as broker:      # returns once the port accepts connections
        ...                                        # cars and the ingest connect to settings.mqtt_port
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import hashlib
import hmac
import logging
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, BrokerError, MQTTError, NoDataError
from amqtt.mqtt.connack import IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import OUTGOING, Session
from amqtt.utils import gen_client_id
from sqlalchemy import Engine

from chelian.config import Settings
from chelian.errors import ChelianError
from chelian.link.service_account import SERVICE_PREFIX, ServiceAccount, service_account
from chelian.link.topics import CAR_PUBLISHES, COMMANDS, parse_topic, vehicle_topic
from chelian.security.hashing import verify_car_secret
from chelian.storage.db import is_migrated, make_engine
from chelian.storage.repositories import vehicles

log = logging.getLogger("chelian.link.broker")

DEFAULT_AUTH_CACHE_TTL_S = 30.0
"""How long a verified (username, password) skips the PBKDF2 check - and so how long a
revoked credential may still be used to connect. Connections already open are not cut."""
PUBACK_TIMEOUT_S = 60.0
DEFAULT_MAX_QUEUED_MESSAGES = 100_000
"""Per disconnected persistent session, as in the generated Mosquitto config."""
SERVICE_PASSWORD_ENV = "CHELIAN_BROKER_SERVICE_PASSWORD"
_IDENTITY = "chelian.identity"  # keys in amqtt Session.attributes
_VERIFIED_AT = "chelian.verified_at"


def packet_limit(max_payload_bytes: int) -> int:
    """Largest MQTT packet a broker accepts before disconnecting the sender.

    Deliberately well above `max_payload_bytes`: payloads over the application limit must
    still reach the ingest, which dead-letters them with reason `payload_too_large`; this
    limit only stops a client from making the broker buffer megabytes.
    """
    return max(8 * max_payload_bytes, 256 * 1024)


# --- who may do what -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated broker user: a car (vin set) or the service account (vin None)."""

    username: str
    vin: str | None
    secret_hash: str | None = None
    """The stored hash the password was checked against: a session is cut when it is revoked."""

    @property
    def is_service(self) -> bool:
        return self.vin is None


def unshare(topic_filter: str) -> str | None:
    """The filter inside `$share/{group}/{filter}` (or the filter itself); None if malformed."""
    if not topic_filter.startswith("$share/"):
        return topic_filter
    parts = topic_filter.split("/", 2)
    if len(parts) < 3 or not parts[1] or "+" in parts[1] or "#" in parts[1] or not parts[2]:
        return None
    return parts[2]


def may_publish(identity: Identity, topic: str) -> bool:
    if identity.is_service:
        return topic.startswith(SERVICE_PREFIX)
    parsed = parse_topic(topic)
    return parsed is not None and parsed[0] == identity.vin and parsed[1] in CAR_PUBLISHES


def may_subscribe(identity: Identity, topic_filter: str) -> bool:
    """Cars get exactly their own command topic (no wildcards); the service anything below the root."""
    if identity.is_service:
        inner = unshare(topic_filter)
        return inner is not None and inner.startswith(SERVICE_PREFIX)
    return topic_filter == vehicle_topic(identity.vin or "", COMMANDS)


def may_receive(identity: Identity, topic: str) -> bool:
    if identity.is_service:
        return topic.startswith(SERVICE_PREFIX)
    return topic == vehicle_topic(identity.vin or "", COMMANDS)


# --- amqtt plugins -------------------------------------------------------------------


class VerificationCache:
    """Successful logins, keyed by (username, sha256(password)), for `ttl_s` seconds.

    A car secret costs one PBKDF2 (about 10 ms) to verify; a fleet reconnecting after a
    broker or network blip would otherwise stall logins for seconds. Only successes are
    kept, so a revoked or rotated credential stops working once its entry expires.
    """

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[str, bytes], tuple[float, Identity]] = {}

    @staticmethod
    def key(username: str, password: str) -> tuple[str, bytes]:
        return username, hashlib.sha256(password.encode()).digest()

    def get(self, key: tuple[str, bytes]) -> Identity | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._entries[key]
            return None
        return hit[1]

    def put(self, key: tuple[str, bytes], identity: Identity) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            while len(self._entries) >= self.max_entries:  # still full: drop the oldest
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (time.monotonic() + self.ttl_s, identity)

    def retain(self, keep: Callable[[Identity, float], bool]) -> None:
        """Keep the entries for which keep(identity, verified_at) is true."""
        self._entries = {k: v for k, v in self._entries.items() if keep(v[1], v[0] - self.ttl_s)}


class ChelianAuthPlugin(BaseAuthPlugin):
    """Cars by VIN + secret (database hash), the service account, nobody else."""

    @dataclass
    class Config:
        database_url: str
        service_username: str
        service_password: str
        cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._engine: Engine = make_engine(self.config.database_url, pool_size=4)
        self._cache = VerificationCache(self.config.cache_ttl_s)
        # Hash checks and queries run off the event loop so relaying never waits on them.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chelian-auth")

    async def authenticate(self, *, session: Session) -> bool:
        username, password = session.username, session.password
        if not username or password is None:
            log.warning("login_refused username=%s client_id=%s reason=no_credentials", username,
                        session.client_id)
            return False
        identity = await self._verify(username, password, session.client_id)
        if identity is None:
            return False
        if session.will_flag and not (session.will_topic and may_publish(identity, session.will_topic)):
            # amqtt publishes a will without any topic check, so it is checked here, at connect.
            log.warning("will_denied username=%s client_id=%s topic=%s", username, session.client_id,
                        session.will_topic)
            return False
        session.attributes[_IDENTITY] = identity
        session.attributes[_VERIFIED_AT] = time.monotonic()
        return True

    async def _verify(self, username: str, password: str, client_id: str | None) -> Identity | None:
        cfg = self.config
        if username == cfg.service_username:
            if hmac.compare_digest(password.encode(), cfg.service_password.encode()):
                return Identity(username, None)
            log.warning("login_refused username=%s client_id=%s reason=bad_password", username, client_id)
            return None
        key = VerificationCache.key(username, password)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        try:
            identity, reason = await loop.run_in_executor(self._pool, self._check_car, username, password)
        except Exception as exc:  # noqa: BLE001 - a database outage refuses logins, never crashes the broker
            log.error("login_refused username=%s client_id=%s reason=auth_backend_error error=%s", username,
                      client_id, exc)
            return None
        if identity is None:
            log.warning("login_refused username=%s client_id=%s reason=%s", username, client_id, reason)
            return None
        self._cache.put(key, identity)
        return identity

    def _check_car(self, username: str, password: str) -> tuple[Identity | None, str]:
        with self._engine.connect() as conn:
            credential = vehicles.credential(conn, username)
        if credential is None:
            return None, "unknown_user"
        if not verify_car_secret(password, credential.secret_hash):
            return None, "bad_password"
        return Identity(username, credential.vin, credential.secret_hash), "ok"

    async def live_credentials(self) -> set[tuple[str, str]]:
        """(username, secret_hash) of every credential that is not revoked."""
        def query() -> set[tuple[str, str]]:
            with self._engine.connect() as conn:
                return {(c.username, c.secret_hash) for c in vehicles.all_credentials(conn)}
        return await asyncio.get_running_loop().run_in_executor(self._pool, query)

    def forget_revoked(self, live: set[tuple[str, str]], as_of: float) -> None:
        """Drop cached logins missing from `live`, a snapshot taken at monotonic time `as_of`."""
        self._cache.retain(lambda identity, verified_at:
                           verified_at >= as_of or (identity.username, identity.secret_hash) in live)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._engine.dispose()


class ChelianTopicPlugin(BaseTopicPlugin):
    """Per-identity publish/subscribe/receive rules (see may_publish and friends)."""

    @dataclass
    class Config:
        denial_log_interval_s: float = 10.0
        """Per username, at most one `topic_denied` line per interval (a looping car would flood)."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._denials: dict[str, tuple[float, int]] = {}

    def allowed(self, session: Session | None, topic: str | None, action: Action | None) -> bool:
        identity = session.attributes.get(_IDENTITY) if session is not None else None
        if identity is None or topic is None:
            return False
        if action == Action.PUBLISH:
            ok = may_publish(identity, topic)
        elif action == Action.SUBSCRIBE:
            ok = may_subscribe(identity, topic)
        elif action == Action.RECEIVE:
            ok = may_receive(identity, topic)
        else:
            ok = False
        if not ok:
            self._log_denial(identity.username, action, topic)
        return ok

    def _log_denial(self, username: str, action: Action | None, topic: str) -> None:
        now = time.monotonic()
        last, suppressed = self._denials.get(username, (-math.inf, 0))
        if now - last < self.config.denial_log_interval_s:
            self._denials[username] = (last, suppressed + 1)
            return
        self._denials[username] = (now, 0)
        log.warning("topic_denied username=%s action=%s topic=%s suppressed=%d", username, action, topic,
                    suppressed)

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        return self.allowed(session, topic, action)


# --- fixes to amqtt 0.12.1 -----------------------------------------------------------


class PacketTooLarge(Exception):  # noqa: N818 - reads as the event it is
    """Raised inside amqtt's reader loop, which then closes the connection."""


class _LimitedReader(StreamReaderAdapter):
    """Refuses to buffer a packet body larger than `limit` (amqtt has no such setting)."""

    def __init__(self, reader: asyncio.StreamReader, limit: int, peer: Any) -> None:
        super().__init__(reader)
        self.limit = limit
        self.peer = peer
        self.username: str | None = None

    async def read(self, n: int = -1) -> bytes:
        if n > self.limit:
            log.warning("packet_too_large username=%s peer=%s bytes=%d limit=%d", self.username, self.peer, n,
                        self.limit)
            raise PacketTooLarge(f"{n} bytes > {self.limit}")
        return await super().read(n)


class ChelianProtocolHandler(BrokerProtocolHandler):
    """amqtt's per-connection handler with keepalive and QoS 1 redelivery made to work.

    * amqtt 0.12.1 never acts on an expired keepalive, so a car that vanishes without a TCP
      FIN stays "connected" and its last will (the offline status) is never published.
    * It drops an outgoing QoS 1 message when the subscriber disconnects before PUBACK, or
      after 5 s without one (amqtt issue #401), so a persistent session - the ingest's - is
      not at-least-once. Here unacknowledged messages stay in `inflight_out` and are resent
      with DUP on reconnect, as MQTT 3.1.1 section 4.4 requires.
    """

    _expiry: asyncio.Task[None] | None = None
    taken: Any = None
    """The incoming message mqtt_deliver_next_message last handed to the broker's client loop,
    until the broker routes it (ChelianBroker._handle_message_delivery / _route_pending)."""

    async def mqtt_deliver_next_message(self) -> Any:
        message = await super().mqtt_deliver_next_message()
        self.taken = message
        return message

    def handle_read_timeout(self) -> None:
        if self.session is None or self._expiry is not None:
            return
        log.info("keepalive_expired username=%s client_id=%s", self.session.username, self.session.client_id)
        self._expiry = asyncio.get_running_loop().create_task(self.handle_connection_closed())

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction != OUTGOING or self.session is None or app_message.packet_id is None:
            await super()._handle_qos1_message_flow(app_message)
            return
        session, packet_id = self.session, app_message.packet_id
        session.inflight_out.setdefault(packet_id, app_message)
        packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
        await self._send_packet(packet)
        app_message.publish_packet = packet
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._puback_waiters[packet_id] = waiter
        acked = False
        try:
            app_message.puback_packet = await asyncio.wait_for(waiter, timeout=PUBACK_TIMEOUT_S)
            acked = True
        except TimeoutError:
            log.warning("puback_timeout username=%s client_id=%s packet_id=%d kept=%s", session.username,
                        session.client_id, packet_id, not session.clean_session)
        finally:
            self._puback_waiters.pop(packet_id, None)
            if acked or session.clean_session:
                session.inflight_out.pop(packet_id, None)


class ChelianBroker(Broker):
    """amqtt's Broker with authentication first, shared subscriptions and no retained-message leak.

    * amqtt 0.12.1 deletes or takes over the session named by a CONNECT's client id before
      authenticating it: anyone who guesses the ingest's client id could wipe its queue. Here
      the CONNECT is authenticated first; a car must use its VIN as client id, and a client id
      in use by another username is refused.
    * It sends every connecting client the retained messages matching *any* client's
      subscription (a car would receive every car's retained status); here only its own
      subscriptions count, and each message passes the RECEIVE rule.
    * It has no shared subscriptions (`$share/{group}/{filter}` matched nothing); here each
      message matching a shared filter goes to one member, round-robin, preferring connected
      members and queueing for a disconnected persistent one only when none is connected.
    * It queues without bound for a disconnected persistent session and delivers the queue
      with the retain flag set; here the queue is bounded and the flag cleared.
    * It has no packet size limit (see packet_limit).
    * It PUBACKs an incoming QoS 1 message on arrival but routes it later, from the client's
      own message loop, and drops whatever that loop had not yet routed when the client
      disconnects: a car that replays a backlog and leaves at once lost its last (already
      acknowledged) messages. Here they are routed on disconnect, in order, before the will.
    """

    def __init__(self, config: dict[str, Any], *, max_packet_bytes: int,
                 max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES) -> None:
        super().__init__(config)
        self.max_packet_bytes = max_packet_bytes
        self.max_queued_messages = max_queued_messages
        self._share_turn: dict[str, int] = {}
        rules = self.plugins_manager.get_plugin(ChelianTopicPlugin.__name__)
        auth = self.plugins_manager.get_plugin(ChelianAuthPlugin.__name__)
        if not isinstance(rules, ChelianTopicPlugin) or not isinstance(auth, ChelianAuthPlugin):
            raise BrokerError("ChelianAuthPlugin and ChelianTopicPlugin must both be configured")
        self._rules, self._auth = rules, auth
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self._sweeper = asyncio.create_task(self._sweep_revoked())

    async def shutdown(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await super().shutdown()

    async def _sweep_revoked(self) -> None:
        """Cut connected cars whose credential was revoked or rotated, as Mosquitto does on reload.

        Runs once per auth-cache TTL, with one query for all live credentials, and also drops
        cached logins for revoked credentials so they cannot reconnect either.
        """
        interval = max(self._auth.config.cache_ttl_s, 1.0)
        while True:
            await asyncio.sleep(interval)
            as_of = time.monotonic()  # logins verified after this may use credentials the query missed
            try:
                live = await self._auth.live_credentials()
            except Exception as exc:  # noqa: BLE001 - keep sweeping once the database is back
                log.error("revocation_sweep_failed error=%s", exc)
                continue
            self._auth.forget_revoked(live, as_of)
            for session, handler in list(self._sessions.values()):
                identity = session.attributes.get(_IDENTITY)
                if (identity is None or identity.is_service or not session.transitions.is_connected()
                        or session.attributes.get(_VERIFIED_AT, 0.0) >= as_of
                        or (identity.username, identity.secret_hash) in live):
                    continue
                log.warning("session_revoked username=%s client_id=%s", identity.username, session.client_id)
                await handler.handle_connection_closed()

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        limited = _LimitedReader(reader, self.max_packet_bytes, writer.get_extra_info("peername"))
        await self._client_connected(listener_name, limited, StreamWriterAdapter(writer))

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str,
                                         remote_port: int) -> tuple[BrokerProtocolHandler, Session]:
        try:
            handler, incoming = await ChelianProtocolHandler.init_from_connect(reader, writer,
                                                                               self.plugins_manager)
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        except MQTTError:
            await writer.close()
            raise
        if isinstance(reader, _LimitedReader):
            reader.username = incoming.username
        refusal = await self._admit(incoming)
        if refusal is not None:
            await ConnackPacket.build(0, refusal).to_stream(writer)
            await writer.close()
            raise MQTTError(f"connection refused: {incoming.username!r} code {refusal}")

        # From here on as amqtt 0.12.1 does it, for a client that is known to be allowed in.
        session = incoming
        if incoming.clean_session:
            if incoming.client_id:
                previous = self._sessions.get(incoming.client_id)
                if previous is not None and previous[0].transitions.is_connected():
                    # Take-over: close the old connection first (amqtt 0.12.1 leaves it running),
                    # so its will - "offline" - is published before the new connection says "online".
                    await previous[1].handle_connection_closed()
                    await previous[1].stop()
                await self._delete_session(incoming.client_id)
            else:
                incoming.client_id = gen_client_id()
            incoming.parent = 0
        elif incoming.client_id in self._sessions:
            session, _ = self._sessions[incoming.client_id]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password", "remote_address", "remote_port"):
                setattr(session, attr, getattr(incoming, attr))
            session.parent = 1
        else:
            incoming.parent = 0
        # MQTT 3.1.1 section 3.1.2.10: disconnect after one and a half keepalive periods of silence.
        session.keep_alive = math.ceil(session.keep_alive * 1.5)
        return handler, session

    async def _admit(self, incoming: Session) -> int | None:
        """None to let the client in, else the CONNACK return code that refuses it.

        A car's client id must be its username, the VIN (docs/protocol.md, "Client id = VIN"):
        no car can take over, or claim before its owner connects, another car's session or
        one of the platform's (`chelian-ingest-*`, `chelian-commands-*`). Mosquitto gets the
        same guarantee from `use_username_as_clientid` (it renames instead of refusing).
        An empty client id is refused too: amqtt has replaced it with a random one by now.
        """
        if not await self._authenticate(incoming, self.listeners_config["default"]):
            return NOT_AUTHORIZED
        identity = incoming.attributes.get(_IDENTITY)
        if identity is not None and not identity.is_service:
            if incoming.client_id != identity.username:
                log.warning("client_id_refused username=%s client_id=%s reason=client_id_is_not_the_vin",
                            incoming.username, incoming.client_id)
                return IDENTIFIER_REJECTED
        existing = self._sessions.get(incoming.client_id or "")
        if existing is not None and existing[0].username != incoming.username:
            log.warning("client_id_in_use username=%s client_id=%s owner=%s", incoming.username,
                        incoming.client_id, existing[0].username)
            return IDENTIFIER_REJECTED
        return None

    async def _handle_message_delivery(self, client_session: Session, handler: BrokerProtocolHandler,
                                       wait_deliver: asyncio.Future[Any]) -> bool:
        if isinstance(handler, ChelianProtocolHandler):
            if wait_deliver.result() is not handler.taken:
                return True  # already routed by _route_pending when the client disconnected
            handler.taken = None
        return await super()._handle_message_delivery(client_session, handler, wait_deliver)

    async def _handle_disconnect(self, client_session: Session, handler: BrokerProtocolHandler,
                                 disconnect_waiter: asyncio.Future[Any]) -> None:
        # Stop reading first, so that nothing more can be queued (or acknowledged), then route
        # what was acknowledged but not yet routed - before the will, which must come last.
        await self._stop_handler(handler)
        await self._route_pending(client_session, handler)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _route_pending(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        """Route the client's received-but-unrouted messages (amqtt 0.12.1 would drop them)."""
        queue = client_session.delivered_message_queue
        routed = 0
        while True:
            message = None
            if isinstance(handler, ChelianProtocolHandler):
                message, handler.taken = handler.taken, None  # the oldest: dequeued by the loop, not routed
            if message is None and not queue.empty():
                message = queue.get_nowait()
            if message is None:
                break
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(message)
            # Invalid topics are refused (and logged) as they would have been; the connection is gone anyway.
            await super()._handle_message_delivery(client_session, handler, done)
            routed += 1
        if routed:
            log.info("routed_on_disconnect username=%s client_id=%s messages=%d", client_session.username,
                     client_session.client_id, routed)

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        # One synchronous rule check instead of amqtt's task-per-plugin fan-out: this runs
        # for every message and every subscriber, and is most of the relay's cost otherwise.
        return self._rules.allowed(session, topic, action)

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Session) -> None:
        topic_filter, qos = subscription
        if topic_filter.startswith("$share/"):
            return  # MQTT 5 section 4.8.2: retained messages are not sent to shared subscriptions
        if not any(s.client_id == session.client_id for s, _ in self._subscriptions.get(topic_filter, ())):
            return  # another client's subscription (amqtt 0.12.1 would leak its messages here)
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = [
            asyncio.ensure_future(
                handler.mqtt_publish(msg.topic, msg.data, min(qos, msg.qos or qos), retain=True))
            for topic, msg in list(self._retained_messages.items())
            if self._matches(topic, topic_filter) and self._rules.allowed(session, topic, Action.RECEIVE)
        ]
        if tasks:
            await asyncio.wait(tasks)

    async def _retain_broadcast_message(self, broadcast: dict[str, Any], qos: int,
                                        target_session: Session) -> None:
        """Queue for a disconnected persistent session, up to max_queued_messages (amqtt has no bound)."""
        if target_session.retained_messages.qsize() >= self.max_queued_messages:
            dropped = target_session.attributes.get("chelian.dropped", 0) + 1
            target_session.attributes["chelian.dropped"] = dropped
            if dropped == 1 or dropped % 10_000 == 0:
                log.warning("queue_full client_id=%s limit=%d dropped=%d", target_session.client_id,
                            self.max_queued_messages, dropped)
            return
        await super()._retain_broadcast_message(broadcast, qos, target_session)

    async def _publish_session_retained_messages(self, session: Session) -> None:
        """Deliver what was queued while the session was away - with retain=0.

        amqtt 0.12.1 sets the retain flag on these, but they are ordinary messages (MQTT
        3.1.1 section 3.3.1.3: retain=1 only for messages sent because of a new subscription).
        """
        session.attributes.pop("chelian.dropped", None)
        handler = self._get_handler(session)
        tasks = []
        while handler is not None and not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            tasks.append(asyncio.ensure_future(handler.mqtt_publish(queued.topic, queued.data, queued.qos,
                                                                    retain=False)))
        if tasks:
            await asyncio.wait(tasks)

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for topic_filter, subscriptions in list(self._subscriptions.items()):
            inner = unshare(topic_filter)
            if inner is None or not self._matches(topic, inner):
                continue
            if topic_filter.startswith("$share/"):
                member = self._share_member(topic_filter, subscriptions, broadcast.get("qos"))
                subscriptions = [member] if member is not None else []
            for target, sub_qos in subscriptions:
                await self._deliver(broadcast, target, broadcast.get("qos", sub_qos), running_tasks)

    def _share_member(self, topic_filter: str, members: list[tuple[Session, int]],
                      forced_qos: int | None) -> tuple[Session, int] | None:
        connected = [m for m in members if m[0].transitions.state == "connected"]
        candidates = connected or [
            m for m in members
            if not m[0].clean_session and (forced_qos if forced_qos is not None else m[1]) in (QOS_1, QOS_2)
        ]
        if not candidates:
            return None
        turn = self._share_turn.get(topic_filter, 0)
        self._share_turn[topic_filter] = turn + 1
        return candidates[turn % len(candidates)]

    async def _deliver(self, broadcast: dict[str, Any], target: Session, qos: int,
                       running_tasks: deque[asyncio.Task[Any]]) -> None:
        """amqtt 0.12.1's per-subscriber step of _run_broadcast, unchanged."""
        if not await self._topic_filtering(target, topic=broadcast["topic"], action=Action.RECEIVE):
            return
        state = target.transitions.state
        if state != "connected":
            if not target.clean_session and qos in (QOS_1, QOS_2) and not target.is_anonymous:
                await self._retain_broadcast_message(broadcast, qos, target)
            return
        handler = self._get_handler(target)
        if handler is not None:
            running_tasks.append(asyncio.ensure_future(
                handler.mqtt_publish(broadcast["topic"], broadcast["data"], qos, retain=False)))


def broker_config(settings: Settings, account: ServiceAccount, *,
                  auth_cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S) -> dict[str, Any]:
    """The amqtt configuration dict (its plugins replace amqtt's defaults, so no anonymous access)."""
    host = settings.mqtt_host
    bind_host = f"[{host}]" if ":" in host else host
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind_host}:{settings.mqtt_port}"}},
        "timeout_disconnect_delay": 0,
        "plugins": {
            f"{__name__}.ChelianAuthPlugin": {
                "database_url": settings.effective_database_url,
                "service_username": account.username,
                "service_password": account.password,
                "cache_ttl_s": auth_cache_ttl_s,
            },
            f"{__name__}.ChelianTopicPlugin": {},
        },
    }


# --- the child process ---------------------------------------------------------------


class BrokerStartError(ChelianError):
    """The embedded broker did not come up (port in use, database not migrated ...)."""


async def serve(settings: Settings, account: ServiceAccount, *, auth_cache_ttl_s: float,
                max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES, ready_fd: int | None = None,
                exit_with_parent: bool = False) -> None:
    """Run the broker until SIGTERM/SIGINT (or, with exit_with_parent, until stdin closes)."""
    engine = make_engine(settings.effective_database_url)
    try:
        migrated = is_migrated(engine)
    except Exception as exc:  # noqa: BLE001 - any driver error: the database is not usable
        raise BrokerStartError(f"cannot open the database {settings.effective_database_url}: {exc}") from exc
    finally:
        engine.dispose()
    if not migrated:
        raise BrokerStartError(f"database {settings.effective_database_url} is not migrated: "
                               "run `chelian db upgrade` first")
    broker = ChelianBroker(broker_config(settings, account, auth_cache_ttl_s=auth_cache_ttl_s),
                           max_packet_bytes=packet_limit(settings.max_payload_bytes),
                           max_queued_messages=max_queued_messages)
    amqtt_log = logging.getLogger("amqtt.broker")
    level = amqtt_log.level
    amqtt_log.setLevel(logging.CRITICAL)  # it logs a traceback; the error below says it plainly
    try:
        await broker.start()
    except BrokerError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            raise BrokerStartError(f"port {settings.mqtt_port} on {settings.mqtt_host} is already in use: "
                                   "stop whatever listens there or choose another port "
                                   "(--mqtt-port, CHELIAN_MQTT_PORT)") from exc
        raise BrokerStartError(f"broker failed to start: {cause or exc}") from exc
    finally:
        amqtt_log.setLevel(level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if exit_with_parent:
        stdin = sys.stdin.fileno()
        loop.add_reader(stdin, lambda: stop.set() if not os.read(stdin, 512) else None)
    log.info("broker_started host=%s port=%d database=%s", settings.mqtt_host, settings.mqtt_port,
             _redact(settings.effective_database_url))
    _signal_ready(ready_fd, "ready")
    await stop.wait()
    log.info("broker_stopping port=%d", settings.mqtt_port)
    await broker.shutdown()


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if "@" in rest else url


def _signal_ready(fd: int | None, line: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
        os.close(fd)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chelian.link.broker",
                                     description="Run chelian's embedded MQTT broker (amqtt).")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    parser.add_argument("--host", help="address to listen on (default: settings.mqtt_host)")
    parser.add_argument("--port", type=int, help="port to listen on (default: settings.mqtt_port)")
    parser.add_argument("--max-payload-bytes", type=int)
    parser.add_argument("--auth-cache-ttl", type=float, default=DEFAULT_AUTH_CACHE_TTL_S,
                        help="seconds a verified car login is remembered (default %(default)s)")
    parser.add_argument("--max-queued-messages", type=int, default=DEFAULT_MAX_QUEUED_MESSAGES,
                        help="messages kept per disconnected persistent session (default %(default)s)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("amqtt").setLevel(logging.ERROR)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        settings = Settings.load(data_dir=args.data_dir, database_url=args.database_url, mqtt_host=args.host,
                                 mqtt_port=args.port, max_payload_bytes=args.max_payload_bytes)
        password = os.environ.pop(SERVICE_PASSWORD_ENV, None)
        account = (ServiceAccount(settings.ingest_username, password) if password
                   else service_account(settings))
        asyncio.run(serve(settings, account, auth_cache_ttl_s=args.auth_cache_ttl,
                          max_queued_messages=args.max_queued_messages, ready_fd=args.ready_fd,
                          exit_with_parent=args.exit_with_parent))
    except ChelianError as exc:
        print(f"chelian broker: {exc}", file=sys.stderr)
        _signal_ready(args.ready_fd, f"error {exc}")
        return 2
    except KeyboardInterrupt:
        pass
    return 0


class EmbeddedBroker:
    """The embedded broker as a child process that lives exactly as long as this object.

    start() returns once the child reports its listening socket bound (so the port accepts
    connections), or raises BrokerStartError with the child's own reason (e.g. port in use).
    The child also exits when this process dies (its stdin pipe closes).
    """

    def __init__(self, settings: Settings, *, auth_cache_ttl_s: float = DEFAULT_AUTH_CACHE_TTL_S,
                 max_queued_messages: int = DEFAULT_MAX_QUEUED_MESSAGES, log_path: Path | None = None,
                 log_level: str = "INFO", start_timeout_s: float = 30.0) -> None:
        if not settings.embedded_broker:
            raise ChelianError(f"settings point at an external broker ({settings.mqtt_url}); "
                               "the embedded broker runs only when mqtt_url is unset")
        self.settings = settings
        self.auth_cache_ttl_s = auth_cache_ttl_s
        self.max_queued_messages = max_queued_messages
        self.log_path = log_path
        self.log_level = log_level
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return self.settings.mqtt_host

    @property
    def port(self) -> int:
        return self.settings.mqtt_port

    def start(self) -> EmbeddedBroker:
        if self.process is not None:
            return self
        s = self.settings
        account = service_account(s)
        cmd = [sys.executable, "-m", __name__, "--data-dir", str(s.data_dir),
               "--database-url", s.effective_database_url, "--host", s.mqtt_host, "--port", str(s.mqtt_port),
               "--max-payload-bytes", str(s.max_payload_bytes),
               "--auth-cache-ttl", str(self.auth_cache_ttl_s),
               "--max-queued-messages", str(self.max_queued_messages), "--log-level", self.log_level,
               "--exit-with-parent"]
        read_fd, write_fd = os.pipe()
        env = {**os.environ, SERVICE_PASSWORD_ENV: account.password}
        log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(cmd + ["--ready-fd", str(write_fd)], pass_fds=(write_fd,),
                                            stdin=subprocess.PIPE, stdout=log_file or None,
                                            stderr=log_file or None, env=env)
        finally:
            os.close(write_fd)
            if log_file is not None:
                log_file.close()
        try:
            self._wait_ready(read_fd)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
        return self

    def _wait_ready(self, read_fd: int) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        reply = b""
        while b"\n" not in reply:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(f"embedded broker did not start within {self.start_timeout_s:.0f} s"
                                       + self._log_hint())
            ready, _, _ = select.select([read_fd], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(read_fd, 4096)
                if not chunk:
                    break
                reply += chunk
        line = reply.decode(errors="replace").strip()
        if line.startswith("error "):
            raise BrokerStartError(line[len("error "):])
        if line != "ready":  # the child says "ready" only once its listening socket is bound
            code = self.process.wait(timeout=5)
            raise BrokerStartError(f"embedded broker exited with code {code} before it was ready"
                                   + self._log_hint())

    def _log_hint(self) -> str:
        return f" (see {self.log_path})" if self.log_path else ""

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("broker_kill pid=%d reason=no_exit_after_sigterm", proc.pid)
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_embedded_broker(settings: Settings, **kwargs: Any) -> EmbeddedBroker:
    """Start the embedded broker child process and return its handle (call .stop() when done)."""
    return EmbeddedBroker(settings, **kwargs).start()


if __name__ == "__main__":
    sys.exit(main())
