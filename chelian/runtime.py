"""Wiring: the one module that knows every moving part and the order they start in.

broker (embedded child process, or an external one) -> storage (migrated) -> ingest
worker -> command relay -> HTTP API; stopped in reverse. `chelian serve`, `chelian demo` and
the end-to-end tests all build the platform through `Platform`, so what is tested is what runs.

With `http_workers` N > 1 (PostgreSQL only) the HTTP API runs in N processes on one port
(SO_REUSEPORT: the kernel spreads connections over them): this one, with everything else,
and N - 1 `ApiWorkers` children, each with its own command relay in the shared ack group
and a LISTEN connection for cross-process wake-ups (services/commands/wakeups.py). Python
runs one thread at a time per process, so this is how the API uses more than one core. It
is not free: bench/commands.py measured 5.2 instead of 4.2 ms of API CPU per command at 200/s
with 2 processes (more relays, less batching), which paid off on 2 shared cores only because
one process was at its limit. Per process, not shared: `/metrics`. The console's live feed
(`WS /api/v1/live`) is shared: on PostgreSQL every ingest process (this one's and `chelian
ingest` workers') NOTIFYs what it committed and every API process LISTENs and feeds its own
push hub (web/feed.py), so a browser sees every car whichever process holds its WebSocket.

Example:
    with Platform(Settings.load(data_dir="/tmp/c1")) as platform:
        print(platform.api_url)       # http://127.0.0.1:8080
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing as mp
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, create_engine

from chelian.api.app import create_app
from chelian.config import Settings
from chelian.errors import ConfigError
from chelian.events import EventBus
from chelian.ingest.processor import CommitObserver, Processor
from chelian.ingest.worker import BrokerEndpoint, IngestWorker
from chelian.link.broker import EmbeddedBroker
from chelian.link.service_account import ServiceAccount, service_account
from chelian.metrics import Metrics, share_across_processes
from chelian.services.commands.lifecycle import CommandService
from chelian.services.commands.notify import SAFETY_POLL_S
from chelian.services.commands.relay import CommandRelay
from chelian.services.commands.wakeups import Listener
from chelian.services.geofences.platform import RulesServices
from chelian.services.notifications.worker import NotificationWorker
from chelian.services.retention.purge import RetentionWorker
from chelian.services.safety.platform import SafetyServices
from chelian.signals import Catalog
from chelian.storage.async_pool import AsyncPools, conninfo
from chelian.storage.db import CUSTOM_PLANS, is_postgres, make_engine, upgrade
from chelian.storage.repositories import vehicles
from chelian.web.feed import LiveListener, LivePublisher, live_publisher, start_live_listener
from chelian.web.push import PushHub

log = logging.getLogger("chelian.runtime")


def ingest_endpoint(settings: Settings, account: ServiceAccount) -> BrokerEndpoint:
    """Where and how ingest connects.

    MQTT 3.1.1 with a persistent session and a `$share/` group on every broker: Mosquitto,
    EMQX and HiveMQ honour shared subscriptions for 3.1.1 clients too (and so does chelian's
    embedded broker), and paho receives 3.1.1 about 1.6x faster than MQTT 5 because it
    parses no per-packet properties (measured here: 6 100 vs 3 700 messages/s).
    """
    host, port = settings.broker_host_port
    return BrokerEndpoint(host, port, account.username, account.password, mqtt5=False,
                          share_group=settings.ingest_share_group)


def build_ingest(settings: Settings, engine: Engine, catalog: Catalog, metrics: Metrics,
                 client_id: str = "chelian-ingest-0", observers: Sequence[CommitObserver] = ()) -> IngestWorker:
    processor = Processor.from_settings(settings, engine, catalog, metrics)
    processor.observers.extend(observers)
    return IngestWorker(processor, ingest_endpoint(settings, service_account(settings)), client_id=client_id,
                        batch_max=settings.ingest_batch_max, batch_wait_ms=settings.ingest_batch_wait_ms)


def build_detectors(engine: Engine, bus: EventBus, catalog: Catalog, *, settings: Settings,
                    commands: Callable[[], Any] = lambda: None) -> tuple[SafetyServices, RulesServices]:
    """The capabilities that watch the ingest stream: crash/roadside/theft (safety) and
    geofences, speed/curfew, diagnostics and trips (rules; also keeps `*_detected` events as
    alerts). Every ingest process runs them, so scaled-out workers detect too. Their thresholds
    come from `settings`, which every caller must pass: a worker silently running on the
    defaults would detect differently from its neighbours."""
    return (SafetyServices.build(engine, bus, catalog, commands=commands, settings=settings),
            RulesServices.build(engine, bus, settings))


def build_relay(settings: Settings, engine: Engine, client_id: str = "chelian-commands-0", *,
                leader: bool = True) -> CommandRelay:
    """The command relay and its service (which alone loads the platform's signing key). On
    PostgreSQL the service creates commands on the event loop (storage/async_pool.py)."""
    service = CommandService.from_settings(settings, engine)
    if is_postgres(engine):
        service.async_pool = AsyncPools(conninfo(engine), max_size=COMMAND_POOL_SIZE, options=CUSTOM_PLANS)
    return CommandRelay(service, ingest_endpoint(settings, service_account(settings)), client_id=client_id,
                        leader=leader)


COMMAND_POOL_SIZE = 24
"""Connections of the command path's pool: as many as requests using it at once (up to the
worker-thread limit), so the pool never opens and closes overflow connections under load."""


def command_engine(engine: Engine) -> Engine:
    """The command path's own PostgreSQL pool, in autocommit mode and without the pre-ping.

    Autocommit is the connections' own mode (isolation_level at connect), so the hot path's
    one-statement work switches nothing on checkout and back on return; the service's rare
    transactions (expiries, key pins) switch instead (CommandService). A pre-ping is one more
    round trip (and GIL hand-off) on every checkout. After a database restart, the first
    statement on a stale connection fails and invalidates the whole pool: one failed request
    per process (the relay retries), instead of a ping on each. SQLite (no network, no
    pre-ping worth removing) keeps the one engine."""
    if not is_postgres(engine):
        return engine
    return create_engine(engine.url, pool_size=COMMAND_POOL_SIZE, max_overflow=8, pool_pre_ping=False,
                         isolation_level="AUTOCOMMIT", connect_args={"options": CUSTOM_PLANS})


def start_wakeups(service: CommandService, api_processes: int) -> Listener | None:
    """With several API processes (PostgreSQL), wake this process's waiters for commands
    settled in any process (LISTEN/NOTIFY); a waiter then re-reads only as a safety net.

    With one API process every settlement of its commands happens in this process (its relay
    settles acks and sweeps expiries) and wakes its waiters directly: no NOTIFY per command and
    no listener thread woken by each only to drop its own message. On PostgreSQL the waiters
    keep the safety-net re-read (a command settled by some other program is seen within it);
    SQLite keeps the shorter one."""
    if api_processes <= 1:
        service.announce = False
        if is_postgres(service.engine):
            service.poll_s = SAFETY_POLL_S
        return None
    if not is_postgres(service.engine):
        return None
    listener = Listener(service.engine, service.notifier).start()
    service.poll_s = SAFETY_POLL_S
    return listener


def http_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """The API's listening socket; `shared`: one of several processes' on the same port."""
    # proto=IPPROTO_TCP, not the default 0: asyncio switches Nagle off (TCP_NODELAY) only on
    # sockets that say they are TCP, and accepted sockets inherit this one's proto. Without it
    # a response's body waits for the ACK of its headers: 40 ms of delayed ACK under load.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


GC_YOUNG_THRESHOLD = 100_000
"""Allocations between young-generation collections in a server process (CPython: 700)."""


def calm_garbage_collector() -> None:
    """Rarer garbage collections for a process that is about to serve requests.

    Why: with CPython's defaults (a young collection every 700 allocations, older ones every
    10) a busy API process keeps stopping to walk its objects, and those pauses are what the
    slowest commands wait for. bench/commands.py at 200 commands/s, 100 cars, runs alternated
    on a shared 2-core box: p99 43-263 ms (median 144 over 6 runs) with the defaults, 14-202 ms
    (median 35 over 9) with this. Reference counting still frees almost every object at once;
    only cyclic garbage waits longer.
    """
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 1000)


def serve_api(settings: Settings, index: int, ready: Any = None) -> None:
    """One extra API process (`ApiWorkers` starts it): the REST API and its own command relay
    (a follower in the shared ack group), until SIGTERM. No broker, ingest or sweeps: those run
    once, in the main process."""
    logging.basicConfig(level=logging.WARNING)
    _die_with_parent()
    engine = make_engine(settings.effective_database_url)
    commands = command_engine(engine)
    relay = build_relay(settings, commands, client_id=f"chelian-commands-{index}", leader=False).start()
    wakeups = start_wakeups(relay.service, settings.http_workers)
    metrics = Metrics()  # shared with the other processes: the parent set PROMETHEUS_MULTIPROC_DIR
    metrics.count_connected_with(lambda: _count_online(engine))
    app = create_app(settings, engine, Catalog.load(settings.vss_json), metrics)
    app.state.commands = relay.service
    app.state.push = push = PushHub(engine)
    live = start_live_listener(engine, push)  # http_workers > 1 is PostgreSQL only: never None here
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    sock = http_socket(settings.http_host, settings.http_port, shared=True)
    calm_garbage_collector()
    try:
        if ready is not None:
            threading.Thread(target=_report_started, args=(server, ready), daemon=True).start()
        server.run(sockets=[sock])  # returns on SIGTERM / SIGINT
    finally:
        sock.close()
        if live is not None:
            live.stop()
        if wakeups is not None:
            wakeups.stop()
        relay.stop()
        commands.dispose()
        engine.dispose()


def _count_online(engine: Engine) -> float:
    with engine.connect() as conn:
        return float(vehicles.count_online(conn))


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the one that started it dies, even by SIGKILL, so no
    orphaned API worker keeps serving the port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _report_started(server: uvicorn.Server, ready: Any) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.02)
    ready.release()


@dataclass
class ApiWorkers:
    """`count` extra API processes on `settings.http_port`, beside the main process's API."""

    settings: Settings
    count: int
    processes: list[Any] = field(default_factory=list)

    def start(self, timeout_s: float = 60.0) -> ApiWorkers:
        ctx = mp.get_context("spawn")  # never fork a process that already runs threads
        ready = ctx.Semaphore(0)
        for index in range(1, self.count + 1):
            proc = ctx.Process(target=serve_api, args=(self.settings, index, ready),
                               name=f"chelian-api-{index}", daemon=True)
            proc.start()
            self.processes.append(proc)
        deadline = time.monotonic() + timeout_s
        for proc in self.processes:
            if not ready.acquire(timeout=max(deadline - time.monotonic(), 0.1)):
                self.stop()
                raise ConfigError(f"API worker {proc.name} did not start within {timeout_s:.0f}s "
                                  f"(exit code {proc.exitcode})")
        log.info("api_workers_started count=%d", self.count)
        return self

    def stop(self) -> None:
        for proc in self.processes:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes its requests, the relay disconnects
        for proc in self.processes:
            proc.join(15)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self.processes.clear()


@dataclass
class Platform:
    settings: Settings
    run_ingest: bool = True
    engine: Engine = field(init=False)
    command_engine: Engine = field(init=False)
    catalog: Catalog = field(init=False)
    metrics: Metrics = field(init=False)
    bus: EventBus = field(init=False)
    observers: list[CommitObserver] = field(init=False, default_factory=list)
    """Ingest-path detectors; capabilities append theirs before start()."""
    push: PushHub = field(init=False)
    """The web console's live map feed, the app's `state.push`: fed by this process's ingest on
    SQLite, by every ingest process through `live` on PostgreSQL."""
    live: LiveListener | None = field(init=False, default=None)
    publisher: LivePublisher | None = field(init=False, default=None)
    """PostgreSQL: the ingest observer that announces commits to every API process."""
    app: FastAPI = field(init=False)
    broker: EmbeddedBroker | None = field(init=False, default=None)
    ingest: IngestWorker | None = field(init=False, default=None)
    relay: CommandRelay | None = field(init=False, default=None)
    wakeups: Listener | None = field(init=False, default=None)
    api_workers: ApiWorkers | None = field(init=False, default=None)
    retention: RetentionWorker | None = field(init=False, default=None)
    rules: RulesServices | None = field(init=False, default=None)
    safety: SafetyServices | None = field(init=False, default=None)
    notifications: NotificationWorker | None = field(init=False, default=None)
    _server: uvicorn.Server | None = field(init=False, default=None)
    _server_thread: threading.Thread | None = field(init=False, default=None)
    _unshare_metrics: Callable[[], None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        s = self.settings
        if s.http_workers > 1 and not s.effective_database_url.startswith("postgresql"):
            raise ConfigError(f"http_workers={s.http_workers} needs PostgreSQL (--database-url postgresql://...): "
                              "on SQLite one API process serves")
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog.load(s.vss_json)
        if s.http_workers > 1:  # a scrape may land on any process: they all count into one place
            self._unshare_metrics = share_across_processes(s.data_dir / "metrics", fresh=True)
        self.metrics = Metrics()
        self.bus = EventBus()
        self.engine = make_engine(s.effective_database_url)
        self.command_engine = command_engine(self.engine)
        self.push = PushHub(self.engine)
        # PostgreSQL: publish to every API process (this one's hub included, see web/feed.py).
        self.publisher = live_publisher(self.engine)
        self.observers.append(self.publisher or self.push)

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.settings.http_host in ("0.0.0.0", "::") else self.settings.http_host
        return f"http://{host}:{self.settings.http_port}"

    def start_backend(self) -> Platform:
        """Migrate, start the broker (if embedded) and ingest; the API is served separately."""
        upgrade(self.settings.effective_database_url)
        self.metrics.count_connected_with(self._count_online)
        if self.settings.embedded_broker:
            _refuse_busy_port(self.settings.mqtt_host, self.settings.mqtt_port, "--mqtt-port")
            self.broker = EmbeddedBroker(self.settings, log_path=self.settings.data_dir / "broker.log").start()
            log.info("broker_started port=%d", self.settings.mqtt_port)
        self.safety, self.rules = build_detectors(self.engine, self.bus, self.catalog, settings=self.settings,
                                                  commands=lambda: self.relay.service if self.relay else None)
        self.observers.extend([*self.safety.observers, *self.rules.observers])
        self.notifications = NotificationWorker.from_env(self.engine).start()
        self.safety.notifier.wake = self.notifications.wake
        if self.run_ingest:
            self.ingest = build_ingest(self.settings, self.engine, self.catalog, self.metrics,
                                       observers=self.observers).start()
        s = self.settings
        self.retention = RetentionWorker(self.engine, s.telemetry_retention_days, s.purge_batch_rows,
                                         s.purge_interval_s).start()
        self.relay = build_relay(self.settings, self.command_engine).start()
        self.wakeups = start_wakeups(self.relay.service, self.settings.http_workers)
        self.live = start_live_listener(self.engine, self.push)
        self.app = create_app(self.settings, self.engine, self.catalog, self.metrics)
        self.app.state.commands = self.relay.service
        self.app.state.safety = self.safety
        self.app.state.push = self.push
        return self

    def _count_online(self) -> float:
        return _count_online(self.engine)

    def uvicorn_server(self) -> uvicorn.Server:
        config = uvicorn.Config(self.app, host=self.settings.http_host, port=self.settings.http_port,
                                log_level="warning", access_log=False)
        return uvicorn.Server(config)

    def serve_http(self) -> None:
        """Serve the API here until Ctrl-C / SIGTERM, with `http_workers` - 1 more processes."""
        sockets = self._http_sockets()
        self._server = self.uvicorn_server()
        calm_garbage_collector()
        self._server.run(sockets=sockets)

    def _http_sockets(self) -> list[socket.socket] | None:
        """None (uvicorn binds) for one API process; else this process's SO_REUSEPORT socket,
        bound before the other workers start, so a busy port is refused here first."""
        s = self.settings
        _refuse_busy_port(s.http_host, s.http_port, "--http-port")
        if s.http_workers <= 1:
            return None
        if s.http_port == 0:
            raise ConfigError("http_workers > 1 needs a fixed --http-port")
        sock = http_socket(s.http_host, s.http_port, shared=True)
        self.api_workers = ApiWorkers(s, s.http_workers - 1).start()
        return [sock]

    def start(self) -> Platform:
        """Everything, with the API in a background thread (tests, the demo)."""
        self.start_backend()
        sockets = self._http_sockets()
        self._server = self.uvicorn_server()
        self._server_thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets},
                                               name="chelian-http", daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise ConfigError(f"the HTTP API did not start on {self.api_url}")
        return self

    def stop(self) -> None:
        if self.api_workers is not None:
            self.api_workers.stop()
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread is not None:
                self._server_thread.join(10)
        if self.notifications is not None:
            self.notifications.stop()
        if self.retention is not None:
            self.retention.stop()
        if self.live is not None:
            self.live.stop()
        if self.wakeups is not None:
            self.wakeups.stop()
        if self.relay is not None:
            self.relay.stop()
        if self.ingest is not None:
            self.ingest.stop()
        if self.publisher is not None:
            self.publisher.close()
        if self.broker is not None:
            self.broker.stop()
        self.command_engine.dispose()
        self.engine.dispose()
        if self._unshare_metrics is not None:
            self._unshare_metrics()

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _refuse_busy_port(host: str, port: int, flag: str) -> None:
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"port {port} on {host} is already in use ({exc.strerror}): "
                              f"pick another with {flag}") from None
