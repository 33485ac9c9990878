"""`chelian serve` (the platform) and `chelian ingest` (extra ingest workers to scale out)."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Annotated

import typer

from chelian.cli.common import console, safe_url, with_settings
from chelian.config import Settings
from chelian.events import EventBus
from chelian.runtime import Platform, build_detectors, build_ingest
from chelian.web.feed import live_publisher

HttpHost = Annotated[str | None, typer.Option("--http-host", help="Address the API listens on. (default: 127.0.0.1)",
                                              show_default=False)]
HttpPort = Annotated[int | None, typer.Option("--http-port", help="Port of the HTTP API. (default: 8080)",
                                              show_default=False)]
Workers = Annotated[int | None, typer.Option("--workers", min=1, max=64, show_default=False,
                                             help="API processes on the HTTP port, each with its own command "
                                                  "relay; PostgreSQL only; worth it when one API process is "
                                                  "the bottleneck and cores are free. (default: 1)")]


def settings_with_http(settings: Settings, http_host: str | None, http_port: int | None,
                       http_workers: int | None = None) -> Settings:
    update = {k: v for k, v in {"http_host": http_host, "http_port": http_port,
                                "http_workers": http_workers}.items() if v is not None}
    return settings.model_copy(update=update) if update else settings


def describe(platform: Platform) -> None:
    s = platform.settings
    host, port = s.broker_host_port
    broker = f"embedded broker mqtt://{host}:{port}" if s.embedded_broker else f"broker {s.mqtt_url}"
    workers = f", {s.http_workers} processes" if s.http_workers > 1 else ""
    console.print(f"chelian API   {platform.api_url}/api/v1   (OpenAPI: {platform.api_url}/docs, "
                  f"metrics: {platform.api_url}/metrics{workers})", markup=False, highlight=False, soft_wrap=True)
    console.print(f"vehicle link  {broker}", markup=False, highlight=False)
    console.print(f"database      {safe_url(s.effective_database_url)}", markup=False, highlight=False,
                  soft_wrap=True)


@with_settings(broker=True)
def serve(settings: Settings, http_host: HttpHost = None, http_port: HttpPort = None,
          workers: Workers = None) -> None:
    """Run the platform: vehicle link (embedded broker unless --mqtt-url), ingest and the REST API."""
    platform = Platform(settings_with_http(settings, http_host, http_port, workers)).start_backend()
    try:
        describe(platform)
        platform.serve_http()  # returns on Ctrl-C / SIGTERM
    finally:
        platform.stop()


@with_settings(broker=True)
def ingest(settings: Settings,
           worker_id: Annotated[str | None, typer.Option(
               help="Stable id of this worker: it names the worker's persistent broker session "
                    "(client id chelian-ingest-ID), which a restarted worker resumes with every message "
                    "queued meanwhile. Default: this host's name. To run several workers on one host, "
                    "give each its own, e.g. --worker-id $(hostname)-2.")] = None) -> None:
    """Run one more ingest worker against the broker (no API); workers share the stream.

    On MQTT 5 brokers every worker joins the shared subscription group, so starting more of
    them (on this or other machines) splits the load. On PostgreSQL each worker also announces
    what it stored to the API processes' live maps. Stop with Ctrl-C.
    """
    from chelian.metrics import Metrics
    from chelian.signals import Catalog
    from chelian.storage.db import make_engine, upgrade

    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    # No pid in the default: a restarted worker must resume its session (and its queue), and a
    # session nobody resumes would stay in the $share group, taking its share of the stream.
    client_id = f"chelian-ingest-{worker_id or socket.gethostname()}"
    catalog = Catalog.load(settings.vss_json)
    safety, rules = build_detectors(engine, EventBus(), catalog, settings=settings)
    live = live_publisher(engine)  # PostgreSQL: the API processes' live maps show these cars too
    worker = build_ingest(settings, engine, catalog, Metrics(), client_id=client_id,
                          observers=[*safety.observers, *rules.observers, *([live] if live else [])])
    worker.start()
    console.print(f"ingest worker {client_id} consuming from {settings.broker_host_port}; Ctrl-C to stop",
                  markup=False, highlight=False)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    worker.stop()
    if live is not None:
        live.close()
    engine.dispose()
