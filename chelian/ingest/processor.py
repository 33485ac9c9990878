"""The broker-independent heart of ingest: raw messages in, committed rows out.

`Processor.process(messages)` prepares a batch, writes it in one transaction, and updates
metrics only after the commit. If the batch write fails for a reason other than the
database being unreachable, each message is retried alone so one poisonous message is
dead-lettered (`storage_error`) instead of taking its valid neighbours down with it.

Example:
    processor = Processor.from_settings(settings, engine, catalog, metrics)
    processor.process([Inbound(mid=1, qos=1, topic=t, payload=p, received_ms=now_ms())])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from chelian.config import Settings
from chelian.ingest import rejections as r
from chelian.ingest.batch import Batch, Inbound, WriteResult
from chelian.ingest.directory import VehicleDirectory
from chelian.ingest.pipeline import Limits, Pipeline
from chelian.ingest.ratelimit import RateLimiter, RejectionSampler
from chelian.ingest.rejections import Rejection
from chelian.ingest.writers import BatchWriter, writer_for
from chelian.link import topics
from chelian.metrics import Metrics
from chelian.signals import Catalog

log = logging.getLogger("chelian.ingest")

# psycopg raises these for lost connections and lock conflicts: worth retrying as a whole.
_TRANSIENT_NAMES = ("OperationalError", "SerializationFailure", "DeadlockDetected", "AdminShutdown")


class CommitObserver(Protocol):
    """Something that reacts to newly stored data (crash detection, geofences, trips, ...).

    Called in the ingest commit thread right after each commit with only what was new in it,
    so a redelivered message never reaches an observer twice. Keep it fast: the next batch
    waits. An observer that raises is logged and skipped; the data is already stored.
    """

    def on_committed(self, result: WriteResult) -> None: ...


class Processor:
    def __init__(self, pipeline: Pipeline, writer: BatchWriter, metrics: Metrics,
                 observers: Sequence[CommitObserver] = ()) -> None:
        self.pipeline = pipeline
        self.writer = writer
        self.metrics = metrics
        self.observers = list(observers)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, catalog: Catalog,
                      metrics: Metrics) -> Processor:
        limiter = RateLimiter(settings.max_messages_per_s, settings.max_message_burst)
        limits = Limits(settings.max_payload_bytes, settings.max_clock_skew_s * 1000)
        sampler = RejectionSampler(settings.flood_sample_interval_s)
        return cls(Pipeline(catalog, VehicleDirectory(engine), limiter, limits, sampler), writer_for(engine),
                   metrics)

    def process(self, messages: Sequence[Inbound]) -> WriteResult:
        """Store `messages`; returns only once they are committed (then they may be acked)."""
        return self.commit(messages, self.prepare(messages))

    def prepare(self, messages: Sequence[Inbound]) -> Batch:
        """The CPU half (parse, validate, encode): can run while the previous batch commits."""
        counts: dict[str, int] = {}
        for msg in messages:
            parsed = topics.parse_topic(msg.topic)
            channel = parsed[1] if parsed else "other"
            counts[channel] = counts.get(channel, 0) + 1
        for channel, n in counts.items():
            self.metrics.messages_in.labels(channel).inc(n)
        return self.pipeline.prepare(messages)

    def commit(self, messages: Sequence[Inbound], batch: Batch) -> WriteResult:
        """The database half: one transaction, or message by message if the batch is refused."""
        started = time.perf_counter()
        try:
            result = self.writer.write(batch)
        except Exception as exc:
            if _is_transient(exc):
                raise
            log.error("ingest_batch_failed error=%r messages=%d: retrying one by one", exc, len(messages))
            result = self._one_by_one(messages, batch)
        else:
            self._count(batch, result, time.perf_counter() - started, len(messages))
        self._notify(result)
        return result

    def _notify(self, result: WriteResult) -> None:
        if not (result.new_telemetry or result.new_events or result.statuses):
            return
        for observer in self.observers:
            try:
                observer.on_committed(result)
            except Exception:
                log.exception("commit_observer_failed observer=%s", type(observer).__name__)

    def _one_by_one(self, messages: Sequence[Inbound], failed: Batch) -> WriteResult:
        """Each message in its own transaction, prepared again with the transport verdicts of
        `failed` (the batch that was refused): a car is not charged rate tokens twice, and a
        refusal the flood sampler left out stays left out."""
        telemetry, events, statuses, duplicates = [], [], [], 0
        for i, msg in enumerate(messages):
            batch = self.pipeline.prepare([msg], decided=[failed.refused.get(i)])
            try:
                result = self.writer.write(batch)
            except Exception as exc:
                if _is_transient(exc):
                    raise
                parsed = topics.parse_topic(msg.topic)
                batch = Batch(rejections=[Rejection(msg.topic, parsed[0] if parsed else None, r.STORAGE_ERROR,
                                                    repr(exc)[:1000], msg.payload, msg.received_ms)])
                result = self.writer.write(batch)
            self._count(batch, result, 0.0, 1)
            telemetry += result.new_telemetry
            events += result.new_events
            statuses += result.statuses
            duplicates += result.duplicates
        return WriteResult(telemetry, events, duplicates, statuses)

    def _count(self, batch: Batch, result: WriteResult, seconds: float, n: int) -> None:
        m = self.metrics
        if seconds:
            m.batch_seconds.observe(seconds)
            m.batch_size.observe(n)
        m.signals_stored.inc(result.signals_stored)
        m.duplicates.inc(result.duplicates + batch.duplicates)
        for rejection in batch.rejections:
            m.messages_rejected.labels(rejection.reason).inc()
        for reason, n in batch.left_out.items():
            m.messages_rejected.labels(reason).inc(n)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        return True
    return any(type(e).__name__ in _TRANSIENT_NAMES for e in _chain(exc))


def _chain(exc: BaseException | None):  # type: ignore[no-untyped-def]
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__
