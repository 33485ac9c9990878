"""Drive detectors the way ingest does: encoded messages through a real Processor."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from chelian.config import Settings
from chelian.ingest.batch import Inbound
from chelian.ingest.processor import Processor
from chelian.link import topics
from chelian.link.codec import encode_event, encode_telemetry
from chelian.metrics import Metrics
from chelian.signals import Catalog

LAT, LON = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
M_PER_DEG = 111_195.0
_SEQ = itertools.count(1)
"""One counter for every Feeder: a restarted detector's feeder must not resend old seqs."""
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


class Feeder:
    def __init__(self, engine, tmp_path: Path, observers) -> None:  # type: ignore[no-untyped-def]
        settings = Settings.load(data_dir=tmp_path, max_messages_per_s=1_000_000, max_message_burst=1_000_000,
                                 max_clock_skew_s=10**9)
        self.processor = Processor.from_settings(settings, engine, Catalog.builtin(), Metrics())
        self.processor.observers.extend(observers)

    def telemetry(self, vin: str, ts_ms: int, signals: dict) -> None:
        self.batch(vin, [(ts_ms, signals)])

    def batch(self, vin: str, messages: list[tuple[int, dict]]) -> None:
        t = topics.telemetry_topic(vin)
        self.processor.process([Inbound(next(_SEQ), 1, t, encode_telemetry(next(_SEQ), ts, s), ts)
                                for ts, s in messages])

    def event(self, vin: str, ts_ms: int, type_: str, data: dict) -> None:
        t = topics.vehicle_topic(vin, topics.EVENTS)
        self.processor.process([Inbound(next(_SEQ), 1, t, encode_event(next(_SEQ), ts_ms, type_, data),
                                        ts_ms)])

    def at(self, vin: str, ts_ms: int, lat: float, lon: float, **extra) -> None:  # type: ignore[no-untyped-def]
        self.telemetry(vin, ts_ms, {LAT: lat, LON: lon, **extra})
