"""Small geometry and sample helpers shared by the detectors."""

from __future__ import annotations

import math

from chelian.ingest.batch import TelemetryRows

EARTH_RADIUS_M = 6_371_000.0


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance; exact enough for the tens of metres that matter here."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def value(row: TelemetryRows, path: str) -> float | str | None:
    """A sample's stored value (numbers and booleans as floats, strings as text), or None."""
    sample = row.samples.get(path)
    if sample is None:
        return None
    return sample[4] if sample[4] is not None else sample[5]


def num(row: TelemetryRows, path: str) -> float | None:
    v = value(row, path)
    return v if isinstance(v, float) else None
