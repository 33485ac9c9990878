"""Prometheus metrics, one registry per platform instance (so tests can run several).

Names follow Prometheus conventions: `_total` counters, `_seconds` histograms.

With several API processes (`chelian serve --workers N`) a scrape lands on whichever process
the kernel picks, so each would report only its own share. `share_across_processes` switches
a process to prometheus_client's multiprocess mode: every process writes its counters and
histograms to files in one directory and any of them answers a scrape with the sum of all.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: a process started with it set shares its metrics."""


def share_across_processes(directory: Path, *, fresh: bool) -> Callable[[], None]:
    """Make metrics created from now on in this process (and in children that inherit the
    environment) write to `directory`; `fresh` empties it first (the parent, before starting
    workers: counts of an earlier run must not be added in). Returns what undoes it.

    prometheus_client picks its value class when first imported, from the environment; this
    process imported it long before, so the class is swapped the way prometheus_client's own
    tests do (`values.ValueClass`, kept importable "for testability").
    """
    if fresh:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    previous_env, previous_class = os.environ.get(MULTIPROC_ENV), values.ValueClass
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.MultiProcessValue()

    def undo() -> None:
        values.ValueClass = previous_class
        if previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous_env

    return undo


class _ConnectedCars(Collector):
    """The connected-car gauge, read at scrape time from `count` (the database is the truth, so
    every process gives the same answer and nothing needs summing)."""

    def __init__(self, count: Callable[[], float]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("chelian_vehicles_connected", "Cars whose last status is online",
                                value=self.count())


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    shared_dir: Path | None = field(default_factory=lambda: _shared_dir_from_env())
    """Set when this process shares its metrics with others (see the module docstring)."""

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
        self.http_requests = Counter("chelian_http_requests_total", "HTTP requests by route and status",
                                     ["method", "route", "status"], registry=r)
        self._per_process = CollectorRegistry()
        """What is read at scrape time rather than summed over processes."""

    def count_connected_with(self, fn: Callable[[], float]) -> None:
        """Read the connected-car gauge from `fn` at scrape time."""
        self._per_process.register(_ConnectedCars(fn))

    def exposition(self) -> bytes:
        """The Prometheus text of every metric: this process's, or all processes' when shared."""
        if self.shared_dir is None:
            own = generate_latest(self.registry)
        else:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=str(self.shared_dir))
            own = generate_latest(merged)
        return own + generate_latest(self._per_process)


def _shared_dir_from_env() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value and values.ValueClass is not values.MutexValue else None
