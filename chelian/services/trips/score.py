"""Trip accumulator and the driving score.

Driving score (0-100, higher is smoother), computed when a trip ends:

    per_100km   = 100 / max(distance_km, 1)         (short trips count as 1 km)
    score = 100 - 4 * harsh_brakes * per_100km
                - 3 * harsh_accels * per_100km
                - 0.5 * max(0, max_speed_kmh - 130)
    clamped to [0, 100], rounded to one decimal.

Harsh events are normalised by distance so a long motorway trip is not punished for the one
emergency stop a short city trip would also have. Braking weighs more than accelerating
because it predicts collisions better. The last term costs half a point per km/h above
130 km/h (the highest general motorway limit in Europe). A harsh event is a longitudinal
acceleration <= -3.5 m/s^2 (braking) or >= 3.0 m/s^2 (accelerating), counted once per
excursion (re-armed when |a| falls under 2.0 m/s^2; all three are settings:
`trip_harsh_braking_ms2`, `trip_harsh_acceleration_ms2`, `trip_harsh_rearm_ms2`); without
an accelerometer signal the derivative of `Vehicle.Speed` between samples at most 5 s apart stands in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

HARSH_BRAKE_MS2: Final = -3.5
HARSH_ACCEL_MS2: Final = 3.0
REARM_MS2: Final = 2.0


def driving_score(distance_m: float, harsh_brakes: int, harsh_accels: int, max_speed_kmh: float) -> float:
    per_100km = 100 / max(distance_m / 1000, 1.0)
    score = (100 - 4 * harsh_brakes * per_100km - 3 * harsh_accels * per_100km
             - 0.5 * max(0.0, max_speed_kmh - 130))
    return round(min(100.0, max(0.0, score)), 1)


@dataclass(slots=True)
class Trip:
    """A trip in progress; `to_stats`/`from_stats` round-trip it through the trips table."""

    start_ms: int
    last_ms: int
    trip_id: int | None = None
    start_lat: float | None = None
    start_lon: float | None = None
    last_lat: float | None = None
    last_lon: float | None = None
    gps_m: float = 0.0
    odo_first: float | None = None
    odo_last: float | None = None
    fuel_pct_first: float | None = None
    fuel_pct_last: float | None = None
    fuel_l_first: float | None = None
    fuel_l_last: float | None = None
    soc_first: float | None = None
    soc_last: float | None = None
    max_speed: float = 0.0
    harsh_brakes: int = 0
    harsh_accels: int = 0
    in_harsh: bool = False
    last_moving_ms: int = 0
    last_speed: float | None = None
    last_speed_ms: int | None = None
    saw_accel: bool = False
    checkpoint_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def distance_m(self) -> float:
        if self.odo_first is not None and self.odo_last is not None and self.odo_last > self.odo_first:
            return self.odo_last - self.odo_first
        return self.gps_m

    def used(self, first: float | None, last: float | None) -> float | None:
        return None if first is None or last is None else round(first - last, 3)

    def to_stats(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_stats(cls, stats: dict[str, Any]) -> Trip:
        known = {k: v for k, v in stats.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def summary(self) -> dict[str, Any]:
        """The columns of a trips row."""
        return dict(start_ms=self.start_ms, end_ms=self.last_moving_ms or self.last_ms,
                    start_lat=self.start_lat, start_lon=self.start_lon, end_lat=self.last_lat,
                    end_lon=self.last_lon, distance_m=round(self.distance_m, 1), max_speed_kmh=self.max_speed,
                    harsh_brakes=self.harsh_brakes, harsh_accels=self.harsh_accels,
                    fuel_used_pct=self.used(self.fuel_pct_first, self.fuel_pct_last),
                    fuel_used_l=self.used(self.fuel_l_first, self.fuel_l_last),
                    soc_used_pct=self.used(self.soc_first, self.soc_last),
                    score=driving_score(self.distance_m, self.harsh_brakes, self.harsh_accels,
                                        self.max_speed))
