"""Real brokers for tests: the embedded amqtt broker and a private Mosquitto.

Loaded by tests/conftest.py (`pytest_plugins`). What it offers:

* `free_port()`: a TCP port nobody listens on right now.
* `embedded_broker(settings)` / `mosquitto_broker(engine, workdir, account)`: context
  managers that run a broker on its own port for the duration of a `with` block (Mosquitto
  as a subprocess with chelian's generated config; skipped with the reason when the binary
  is absent).
* `broker_stack` fixture, parametrised ["embedded", "mosquitto"]: embedded amqtt on SQLite,
  and Mosquitto on PostgreSQL - the two ways chelian is deployed. The BrokerStack has
  settings (data_dir, database_url, mqtt host/port), engine, service account, `add_car()`
  and `sync()` (regenerate Mosquitto's password files + SIGHUP after provisioning or
  revoking; a no-op on the embedded broker, which reads the database itself), and
  `client()` / `car_client()` / `service_client()` returning a connected MqttProbe.
  Mosquitto runs chelian's two listeners: cars on `stack.port` (settings.public_mqtt_url),
  the platform's services on `stack.platform_port` (settings.mqtt_url); the embedded broker
  has one port, so there both are the same.
* `embedded_stack` / `mosquitto_stack`: one kind only.
* `MqttProbe`: a paho 2.x client with blocking, bounded helpers (subscribe waits for
  SUBACK, publish for PUBACK, expect() for a message).

Example:
    def test_something(broker_stack):
        car = broker_stack.add_car("1M8GDM9AXKP042788")
        ingest = broker_stack.service_client()
        ingest.subscribe("v1/vehicles/+/telemetry")
        broker_stack.client(car.mqtt_username, car.mqtt_password).publish(telemetry_topic(car.vin), b"{}")
        assert ingest.expect(timeout=5) is not None
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from chelian.config import Settings
from chelian.link.broker import BrokerStartError, EmbeddedBroker
from chelian.link.mosquitto import MosquittoFiles, sync_mosquitto, write_mosquitto_config
from chelian.link.service_account import ServiceAccount, service_account
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.provisioning import CarCredentials, provision
from chelian.storage.db import make_engine, upgrade

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)
TEST_AUTH_CACHE_TTL_S = 1.0
"""The embedded broker in tests forgets verified logins after 1 s, so revocation is quick to test."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ingest_process(stack: Any, worker_id: str, log: Path) -> subprocess.Popen:
    """A `chelian ingest` worker process against `stack`'s broker and database, logging to `log`."""
    s = stack.settings
    broker = ["--mqtt-url", s.mqtt_url] if s.mqtt_url else ["--mqtt-port", str(s.mqtt_port)]
    cmd = [sys.executable, "-m", "chelian", "ingest", "--worker-id", worker_id, "--data-dir",
           str(s.data_dir), "--database-url", s.effective_database_url, *broker]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (the worker finishes its batch and disconnects), SIGKILL after 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_until(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is truthy or `timeout` passes; returns its last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- an MQTT client for tests --------------------------------------------------------

_client_ids = itertools.count(1)


class MqttProbe:
    """A paho client whose every step waits (boundedly) for the broker's answer."""

    def __init__(self, host: str, port: int, username: str | None, password: str | None, *,
                 client_id: str | None = None, clean_session: bool = True, mqtt5: bool = False,
                 manual_ack: bool = False, keepalive: int = 60,
                 will: tuple[str, bytes, int, bool] | None = None) -> None:
        self.host, self.port = host, port
        self.client_id = client_id or f"probe-{next(_client_ids)}"
        self.mqtt5 = mqtt5
        self.keepalive = keepalive
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._held: list[mqtt.MQTTMessage] = []
        self.reason_code: ReasonCode | None = None
        self._connack = threading.Event()
        self._disconnected = threading.Event()
        self._lock = threading.Lock()
        self._acks: dict[int, Any] = {}
        self._ack_events: dict[int, threading.Event] = {}
        kwargs: dict[str, Any] = {"protocol": mqtt.MQTTv5} if mqtt5 else {"protocol": mqtt.MQTTv311,
                                                                          "clean_session": clean_session}
        self.clean_session = clean_session
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  manual_ack=manual_ack,
                                  **kwargs)
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos=qos, retain=retain)
        self.client.max_inflight_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_subscribe = self._on_ack
        self.client.on_publish = self._on_ack

    # paho callbacks (its network thread)
    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason_code: ReasonCode, _p: Any) -> None:
        self.reason_code = reason_code
        if not reason_code.is_failure:
            self._disconnected.clear()
        self._connack.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, _rc: Any, _p: Any = None) -> None:
        self._disconnected.set()

    def _on_ack(self, _c: Any, _u: Any, mid: int, result: Any, _p: Any = None) -> None:
        with self._lock:
            self._acks[mid] = result
            event = self._ack_events.setdefault(mid, threading.Event())
        event.set()

    def _wait_ack(self, mid: int, timeout: float) -> Any:
        with self._lock:
            event = self._ack_events.setdefault(mid, threading.Event())
        if not event.wait(timeout):
            return None
        with self._lock:
            self._ack_events.pop(mid, None)
            return self._acks.pop(mid, None)

    # blocking helpers
    def connect(self, timeout: float = 10.0) -> ReasonCode | None:
        """Connect and wait for CONNACK; returns its reason code (None on no answer). Never raises."""
        self._connack.clear()
        properties = None
        if self.mqtt5 and not self.clean_session:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        kwargs: dict[str, Any] = {}
        if self.mqtt5:
            kwargs = {"clean_start": self.clean_session, "properties": properties}
        try:
            self.client.connect(self.host, self.port, keepalive=self.keepalive, **kwargs)
        except OSError:
            return None
        self.client.loop_start()
        if not self._connack.wait(timeout):
            self.client.loop_stop()
            return None
        if self.reason_code is not None and self.reason_code.is_failure:
            self.client.loop_stop()  # no automatic retries with refused credentials
            self.client.disconnect()
        return self.reason_code

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> int | None:
        """Subscribe and wait for SUBACK; returns the granted QoS (0x80 = refused), None on no answer."""
        _, mid = self.client.subscribe(topic_filter, qos)
        result = self._wait_ack(mid, timeout)
        return None if result is None else int(result[0].value)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                timeout: float = 5.0) -> bool:
        """Publish; with QoS 1 wait for PUBACK. True once the broker has it."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return info.rc == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(info.mid, timeout) is not None

    def expect(self, topic: str | None = None, timeout: float = 5.0) -> mqtt.MQTTMessage | None:
        """The next message (the next on `topic`, if given), or None after `timeout`.

        Messages on other topics are kept, in order, for later expect() and drain() calls:
        a test that waits for a barrier must still see what arrived before it.
        """
        for i, held in enumerate(self._held):
            if topic is None or held.topic == topic:
                del self._held[i]
                return held
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                return None
            if topic is None or msg.topic == topic:
                return msg
            self._held.append(msg)
        return None

    def drain(self) -> list[mqtt.MQTTMessage]:
        """Every message received and not yet returned, oldest first."""
        out, self._held = self._held, []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout: float = 5.0) -> bool:
        return self._disconnected.wait(timeout)

    def freeze(self) -> None:
        """Stop talking without closing the socket: a car in a tunnel (no PINGREQ, no FIN)."""
        self.client.loop_stop()

    def drop(self) -> None:
        """Close the TCP connection without DISCONNECT (the broker sends the will)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


# --- brokers ---------------------------------------------------------------------------


@contextmanager
def embedded_broker(settings: Settings, *, auth_cache_ttl_s: float = TEST_AUTH_CACHE_TTL_S,
                    log_level: str = "INFO") -> Iterator[EmbeddedBroker]:
    """The embedded broker for `settings` (its mqtt_port must be free) for the `with` block."""
    broker = EmbeddedBroker(settings, auth_cache_ttl_s=auth_cache_ttl_s, log_level=log_level,
                            log_path=settings.data_dir / "broker.log")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with broker:
        yield broker


@dataclass
class MosquittoProcess:
    """A private Mosquitto running chelian's generated configuration."""

    engine: Engine
    account: ServiceAccount
    files: MosquittoFiles
    port: int
    """The car listener."""
    platform_port: int
    """The platform listener (the service account only)."""
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    def start(self, timeout_s: float = 10.0) -> MosquittoProcess:
        if MOSQUITTO is None:
            pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.files.conf)], stdout=log,
                                            stderr=subprocess.STDOUT)
        finally:
            log.close()
        proc = self.process
        up = wait_until(lambda: proc.poll() is not None or (_port_open(self.host, self.port)
                                                             and _port_open(self.host, self.platform_port)),
                        timeout_s)
        if not up or proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"mosquitto did not start on ports {self.port} and {self.platform_port}:\n"
                               f"{self.log_tail()}")
        return self

    def sync(self, timeout_s: float = 5.0) -> None:
        """Rewrite the password files from the database and wait until Mosquitto has reloaded them."""
        assert self.process is not None
        before = self._reloads()
        sync_mosquitto(self.engine, self.files, self.account, pid=self.process.pid)
        if not wait_until(lambda: self._reloads() > before, timeout_s, interval=0.01):
            raise RuntimeError(f"mosquitto did not reload within {timeout_s} s:\n{self.log_tail()}")

    def _reloads(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("Reloading config")
        except FileNotFoundError:
            return 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _another_free_port(taken: int) -> int:
    while (port := free_port()) == taken:
        pass
    return port


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def mosquitto_broker(engine: Engine, workdir: Path, account: ServiceAccount, *, port: int | None = None,
                     platform_port: int | None = None,
                     max_payload_bytes: int = 16384) -> Iterator[MosquittoProcess]:
    """A Mosquitto subprocess with files generated in `workdir`: cars on `port`, the service
    account on `platform_port` (default: free ones)."""
    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
    port = port or free_port()
    platform_port = platform_port or _another_free_port(port)
    files = write_mosquitto_config(engine, workdir, port=port, service_account=account,
                                   bind_address="127.0.0.1", platform_port=platform_port,
                                   platform_bind="127.0.0.1", max_payload_bytes=max_payload_bytes,
                                   broker_user=None)
    # Tests need the "Reloading config" notice to know a SIGHUP has been handled; and a root
    # test run keeps Mosquitto root, since the `mosquitto` user cannot enter pytest's tmp dirs.
    extra = "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
    if os.geteuid() == 0:
        extra += "user root\n"
    files.conf.write_text(files.conf.read_text() + extra)
    proc = MosquittoProcess(engine, account, files, port, platform_port, workdir / "mosquitto.log").start()
    try:
        yield proc
    finally:
        proc.stop()


# --- the broker stack ------------------------------------------------------------------


@dataclass
class BrokerStack:
    """A database, a broker that enforces chelian's rules on it, and helpers to use both."""

    kind: str
    settings: Settings
    engine: Engine
    service: ServiceAccount
    broker: EmbeddedBroker | MosquittoProcess
    probes: list[MqttProbe] = field(default_factory=list)
    _owner_id: int | None = None

    @property
    def host(self) -> str:
        """Where cars connect (the car listener on Mosquitto)."""
        return self._car_host_port[0]

    @property
    def port(self) -> int:
        """The port cars connect to (settings.car_mqtt_url)."""
        return self._car_host_port[1]

    @property
    def car_port(self) -> int:
        return self.port

    @property
    def platform_port(self) -> int:
        """Where chelian's services connect (settings.mqtt_url; on the embedded broker, the car port)."""
        return self.settings.broker_host_port[1]

    @property
    def _car_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.settings.car_mqtt_url)
        return parts.hostname or "127.0.0.1", parts.port or 1883

    @property
    def mqtt5(self) -> bool:
        """Whether the broker speaks MQTT 5 (Mosquitto) or only 3.1.1 (amqtt)."""
        return self.kind == "mosquitto"

    def sync(self) -> None:
        """Make the broker see credential changes now (Mosquitto: rewrite + SIGHUP)."""
        if isinstance(self.broker, MosquittoProcess):
            self.broker.sync()

    def add_car(self, vin: str, *, make: str = "Ford", model: str = "Focus", year: int = 2019,
                sync: bool = True) -> CarCredentials:
        """Provision a car for a test owner and (by default) make the broker know it."""
        if self._owner_id is None:
            self._owner_id = sign_up(self.engine, "owner@example.com", "password1").id
        _, creds = provision(self.engine, vin=vin, make=make, model=model, year=year, owner_id=self._owner_id,
                             mqtt_url=self.settings.car_mqtt_url)
        if sync:
            self.sync()
        return creds

    def client(self, username: str | None, password: str | None, *, connect: bool = True,
               port: int | None = None, **kwargs: Any) -> MqttProbe:
        """A probe (closed at teardown) on the car port, or on `port`; connected unless
        connect=False. Check .reason_code."""
        kwargs.setdefault("mqtt5", False)
        probe = MqttProbe(self.host, port or self.port, username, password, **kwargs)
        self.probes.append(probe)
        if connect:
            probe.connect()
        return probe

    def car_client(self, creds: CarCredentials, **kwargs: Any) -> MqttProbe:
        kwargs.setdefault("client_id", creds.vin)
        return self.client(creds.mqtt_username, creds.mqtt_password, **kwargs)

    def service_client(self, **kwargs: Any) -> MqttProbe:
        """The service account on the platform port, as the ingest and the command relay connect."""
        kwargs.setdefault("port", self.platform_port)
        probe = self.client(self.service.username, self.service.password, **kwargs)
        assert probe.reason_code is None or not probe.reason_code.is_failure, probe.reason_code
        return probe

    def close(self) -> None:
        for probe in self.probes:
            try:
                probe.close()
            except Exception:  # noqa: BLE001 - teardown must reach the broker either way
                pass


def _sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'chelian.db'}"
    upgrade(url)
    return url


@contextmanager
def _postgresql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    from tests.conftest import drop_pg_database, new_pg_database

    template = request.getfixturevalue("pg_template")  # skips when PostgreSQL is not there
    name, url = new_pg_database(template)
    try:
        yield url
    finally:
        drop_pg_database(name)


@contextmanager
def make_broker_stack(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerStack]:
    """embedded -> amqtt child process on SQLite; mosquitto -> Mosquitto subprocess on PostgreSQL."""
    data_dir = tmp_path / "data"
    if kind == "embedded":
        url = _sqlite_url(tmp_path)
        data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):  # free_port() can race with another process taking the port
            settings = Settings.load(data_dir=data_dir, database_url=url, mqtt_host="127.0.0.1",
                                     mqtt_port=free_port())
            broker = EmbeddedBroker(settings, auth_cache_ttl_s=TEST_AUTH_CACHE_TTL_S,
                                    log_path=data_dir / "broker.log")
            try:
                broker.start()
                break
            except BrokerStartError:
                if attempt == 2:
                    raise
        engine = make_engine(url)
        stack = BrokerStack(kind, settings, engine, service_account(settings), broker)
        try:
            yield stack
        finally:
            stack.close()
            broker.stop()
            engine.dispose()
    elif kind == "mosquitto":
        if MOSQUITTO is None:
            pytest.skip("the mosquitto binary is not installed (apt-get install mosquitto)")
        with _postgresql_url(request) as url:
            port = free_port()
            platform_port = _another_free_port(port)
            settings = Settings.load(data_dir=data_dir, database_url=url,
                                     mqtt_url=f"mqtt://127.0.0.1:{platform_port}",
                                     public_mqtt_url=f"mqtt://127.0.0.1:{port}")
            engine = make_engine(url)
            account = service_account(settings)
            try:
                with mosquitto_broker(engine, tmp_path / "mosquitto", account, port=port,
                                      platform_port=platform_port,
                                      max_payload_bytes=settings.max_payload_bytes) as broker:
                    stack = BrokerStack(kind, settings, engine, account, broker)
                    try:
                        yield stack
                    finally:
                        stack.close()
            finally:
                engine.dispose()
    else:
        raise ValueError(f"unknown broker kind {kind!r}")


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.production)])
def broker_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerStack]:
    """Each deployment shape: embedded amqtt + SQLite, Mosquitto + PostgreSQL."""
    with make_broker_stack(request.param, request, tmp_path) as stack:
        yield stack


@pytest.fixture
def embedded_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerStack]:
    with make_broker_stack("embedded", request, tmp_path) as stack:
        yield stack


@pytest.fixture
def mosquitto_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerStack]:
    with make_broker_stack("mosquitto", request, tmp_path) as stack:
        yield stack
