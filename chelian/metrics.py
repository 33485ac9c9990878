"""Prometheus metrics, one registry per platform instance (so tests can run several).

Names follow Prometheus conventions: `_total` counters, `_seconds` histograms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages_in = Counter("chelian_messages_received_total",
                                   "MQTT messages received from cars, by channel", ["channel"], registry=r)
        self.messages_rejected = Counter("chelian_messages_rejected_total",
                                         "Messages (or signals within one) refused, by reason", ["reason"],
                                         registry=r)
        self.signals_stored = Counter("chelian_signals_stored_total", "Signal samples committed", registry=r)
        self.duplicates = Counter("chelian_messages_duplicate_total",
                                  "Redelivered messages recognised by (vin, seq) and not stored again",
                                  registry=r)
        self.batch_seconds = Histogram("chelian_ingest_batch_seconds", "Time to commit one ingest batch",
                                       buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                                       registry=r)
        self.batch_size = Histogram("chelian_ingest_batch_messages", "Messages per committed batch",
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000), registry=r)
        self.connected = Gauge("chelian_vehicles_connected", "Cars whose last status is online", registry=r)
        self.http_requests = Counter("chelian_http_requests_total", "HTTP requests by route and status",
                                     ["method", "route", "status"], registry=r)

    def count_connected_with(self, fn: Callable[[], float]) -> None:
        """Read the connected-car gauge from `fn` at scrape time (the database is the truth)."""
        self.connected.set_function(fn)
