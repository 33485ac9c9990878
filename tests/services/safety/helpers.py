"""Building ingest's committed rows from plain signal dicts, as the detectors receive them."""

from __future__ import annotations

import json
from typing import Any

from chelian.ingest.batch import EventRow, TelemetryRows, WriteResult
from chelian.signals import Catalog
from chelian.storage.values import encode_value

CATALOG = Catalog.builtin()


def row(vehicle_id: int, seq: int, ts_ms: int, signals: dict[str, Any]) -> TelemetryRows:
    samples = {}
    for path, value in signals.items():
        num, text = encode_value(CATALOG.get(path), value)
        samples[path] = (vehicle_id, path, ts_ms, ts_ms, num, text)
    return TelemetryRows(vehicle_id, seq, ts_ms, ts_ms, json.dumps(signals), samples)


def telemetry(*rows: TelemetryRows) -> WriteResult:
    return WriteResult(list(rows), [], 0)


def events(*rows: EventRow) -> WriteResult:
    return WriteResult([], list(rows), 0)


def drive(
    vehicle_id: int,
    start_seq: int,
    start_ms: int,
    speeds_and_accels: list[tuple[float, float]],
    step_ms: int = 200,
    **extra: Any,
) -> list[TelemetryRows]:
    """Messages every `step_ms` with (speed km/h, longitudinal m/s^2) each."""
    return [
        row(
            vehicle_id,
            start_seq + i,
            start_ms + i * step_ms,
            {"Vehicle.Speed": s, "Vehicle.Acceleration.Longitudinal": a, **extra},
        )
        for i, (s, a) in enumerate(speeds_and_accels)
    ]
