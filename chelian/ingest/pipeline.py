"""Turning a batch of raw MQTT messages into storable rows, in one declared order.

For each message: topic -> size limit -> rate limit -> decode -> known vehicle -> clock
-> each signal against the catalog -> encode. A message that fails a step is rejected whole
(dead-lettered with its raw payload); a signal that fails the catalog is dropped from an
otherwise good message and the message is dead-lettered too, so nothing is silently lost.
The exception is a flood: a car's size and rate refusals are all counted, but only one per
car and reason per `flood_sample_interval_s` is dead-lettered and logged (`Batch.left_out`).
Steps never touch the database except through the VehicleDirectory cache.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from chelian.ingest import rejections as r
from chelian.ingest.batch import Batch, EventRow, Inbound, SampleRow, StatusRow, TelemetryRows
from chelian.ingest.directory import VehicleDirectory
from chelian.ingest.ratelimit import RateLimiter, RejectionSampler
from chelian.ingest.rejections import Rejection
from chelian.link import topics
from chelian.link.codec import WireError, decode_event, decode_status, decode_telemetry
from chelian.signals import Catalog, SignalError
from chelian.storage.values import encode_value

log = logging.getLogger("chelian.ingest")


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 16384
    max_clock_skew_ms: int = 300_000


class Pipeline:
    def __init__(self, catalog: Catalog, directory: VehicleDirectory, limiter: RateLimiter,
                 limits: Limits, sampler: RejectionSampler | None = None) -> None:
        self.catalog = catalog
        self.directory = directory
        self.limiter = limiter
        self.limits = limits
        self.sampler = sampler or RejectionSampler(60.0)

    def prepare(self, inbound: Sequence[Inbound],
                decided: Sequence[Rejection | str | None] | None = None) -> Batch:
        """Validate and encode `inbound`.

        `decided` (one entry per message, from an earlier `Batch.refused`) replays the transport
        checks' verdicts instead of running them again, so a retry does not take rate tokens twice.
        """
        batch = Batch()
        # Resolve cars first: if the database is down this raises before any rate token is taken,
        # and the whole prepare is retried later without charging a car twice.
        ids = self.directory.resolve(
            p[0] for p in map(topics.parse_topic, (m.topic for m in inbound)) if p is not None)
        parsed: list[tuple[Inbound, str, str]] = []
        for i, msg in enumerate(inbound):
            verdict = self._check_transport(msg) if decided is None else decided[i]
            if verdict is not None:
                batch.refused[i] = verdict
                if isinstance(verdict, str):
                    batch.left_out[verdict] = batch.left_out.get(verdict, 0) + 1
                else:
                    batch.rejections.append(verdict)
                continue
            vin, channel = topics.parse_topic(msg.topic)  # type: ignore[misc]  # checked above
            parsed.append((msg, vin, channel))
        seen: set[tuple[str, str, int]] = set()
        for msg, vin, channel in parsed:
            vehicle_id = ids.get(vin)
            if vehicle_id is None:
                batch.rejections.append(self._reject(msg, vin, r.UNKNOWN_VEHICLE,
                                                     f"no vehicle {vin} is registered"))
                continue
            try:
                if channel == topics.TELEMETRY:
                    self._telemetry(batch, msg, vin, vehicle_id, seen)
                elif channel == topics.EVENTS:
                    self._event(batch, msg, vin, vehicle_id, seen)
                elif channel == topics.STATUS:
                    status = decode_status(vin, msg.payload)
                    batch.statuses.append(StatusRow(vehicle_id, status.online,
                                                    status.ts_ms or msg.received_ms))
            except WireError as exc:
                batch.rejections.append(self._reject(msg, vin, exc.reason, exc.detail))
        return batch

    def _check_transport(self, msg: Inbound) -> Rejection | str | None:
        """None if the message may go on; else its dead-letter row, or only the reason when a
        flooding car's refusal is left out (counted, not kept: see RejectionSampler)."""
        parsed = topics.parse_topic(msg.topic)
        if parsed is None or parsed[1] not in (topics.TELEMETRY, topics.EVENTS, topics.STATUS):
            return self._reject(msg, None, r.BAD_TOPIC, f"not a car->cloud vehicle-link topic: {msg.topic}")
        vin = parsed[0]
        if len(msg.payload) > self.limits.max_payload_bytes:
            return self._flood(msg, vin, r.PAYLOAD_TOO_LARGE,
                               f"{len(msg.payload)} bytes > limit {self.limits.max_payload_bytes}")
        # Status messages are tiny, retained and sent on every (re)connect: never rate-limit them.
        if parsed[1] != topics.STATUS and not self.limiter.allow(vin):
            return self._flood(msg, vin, r.RATE_LIMITED, "per-car message rate exceeded")
        return None

    def _flood(self, msg: Inbound, vin: str, reason: str, detail: str) -> Rejection | str:
        left_out = self.sampler.admit(vin, reason)
        if left_out is None:
            return reason
        if left_out:
            detail += (f" ({left_out} more {reason} from this car since the previous one kept here: "
                       f"counted, not kept)")
        return self._reject(msg, vin, reason, detail, keep_payload=reason != r.PAYLOAD_TOO_LARGE)

    def _telemetry(self, batch: Batch, msg: Inbound, vin: str, vehicle_id: int,
                   seen: set[tuple[str, str, int]]) -> None:
        tm = decode_telemetry(vin, msg.payload)
        self._check_clock(tm.ts_ms, msg)
        key = (topics.TELEMETRY, vin, tm.seq)
        if key in seen:  # the same message twice in one batch (a broker redelivery)
            batch.duplicates += 1
            return
        seen.add(key)
        samples: dict[str, SampleRow] = {}
        accepted: dict[str, object] = {}
        refused: list[str] = []
        fast_checks = self.catalog.fast_checks
        ts, received = tm.ts_ms, msg.received_ms
        for path, value in tm.signals.items():
            # Hot path: values of exactly the right Python type inside the bounds (nearly all).
            fast = fast_checks.get(path)
            if fast is not None:
                kind, lo, hi, allowed = fast
                vt = type(value)
                if (kind == "f" and vt is float and lo <= value <= hi) or (
                        kind == "i" and vt is int and lo <= value <= hi):
                    accepted[path] = value
                    samples[path] = (vehicle_id, path, ts, received, float(value), None)
                    continue
                if kind == "b" and vt is bool:
                    accepted[path] = value
                    samples[path] = (vehicle_id, path, ts, received, 1.0 if value else 0.0, None)
                    continue
                if kind == "s" and vt is str and (allowed is None or value in allowed):
                    accepted[path] = value
                    samples[path] = (vehicle_id, path, ts, received, None, value)
                    continue
            signal = self.catalog.get(path)
            try:
                if signal is None:
                    raise SignalError(r.UNKNOWN_SIGNAL, f"{path} is not a known signal")
                num, text = encode_value(signal, self.catalog.check(path, value))
            except SignalError as exc:
                refused.append(f"{exc.reason}: {exc.detail}")
                continue
            accepted[path] = value
            samples[path] = (vehicle_id, path, ts, received, num, text)
        if refused:
            reason = refused[0].split(":", 1)[0]
            batch.rejections.append(self._reject(msg, vin, reason, "; ".join(refused)))
        if samples:
            body = json.dumps(accepted, separators=(",", ":"))
            batch.telemetry.append(TelemetryRows(vehicle_id, tm.seq, tm.ts_ms, msg.received_ms, body,
                                                 samples))

    def _event(self, batch: Batch, msg: Inbound, vin: str, vehicle_id: int,
               seen: set[tuple[str, str, int]]) -> None:
        ev = decode_event(vin, msg.payload)
        self._check_clock(ev.ts_ms, msg)
        key = (topics.EVENTS, vin, ev.seq)
        if key in seen:
            batch.duplicates += 1
            return
        seen.add(key)
        batch.events.append(EventRow(vehicle_id, ev.seq, ev.type, ev.ts_ms, msg.received_ms, ev.data))

    def _check_clock(self, ts_ms: int, msg: Inbound) -> None:
        if ts_ms > msg.received_ms + self.limits.max_clock_skew_ms:
            raise WireError(r.CLOCK_SKEW, f"device time {ts_ms} is ahead of server time {msg.received_ms}")

    @staticmethod
    def _reject(msg: Inbound, vin: str | None, reason: str, detail: str, *,
                keep_payload: bool = True) -> Rejection:
        log.warning("message_rejected reason=%s vin=%s topic=%s detail=%s", reason, vin, msg.topic,
                    detail[:200])
        # An oversized payload is kept only up to the limit that matters for forensics.
        if keep_payload:
            return Rejection(msg.topic, vin, reason, detail, msg.payload, msg.received_ms)
        return Rejection(msg.topic, vin, reason, detail, msg.payload[:4096], msg.received_ms,
                         whole_payload=msg.payload)
