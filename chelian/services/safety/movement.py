"""The unauthorised-movement rule: a parked, locked car that moves is being towed or stolen.

A car that is locked (driver door) with the ignition OFF/LOCK and then goes faster than
`speed_kmh` or ends up more than `radius_m` from where it was parked raises one alert per
parked episode, re-armed by unlocking or switching on. The radius is what tells GPS jitter
of a parked car (typically 5-20 m) from real movement. The parking spot is remembered in
memory: after a restart the first position seen while parked becomes the spot.

Example:
    guard = MovementGuard(speed_kmh=5.0, radius_m=50.0)
    guard.feed(row)        # a Movement once the parked car left its spot, else None
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from chelian.ingest.batch import TelemetryRows
from chelian.services.safety import names as n
from chelian.services.safety.geo import distance_m, num, value

PARKED_STATES: Final = frozenset({"OFF", "LOCK"})


@dataclass(frozen=True, slots=True)
class Movement:
    vehicle_id: int
    seq: int
    ts_ms: int
    latitude: float | None
    longitude: float | None
    speed_kmh: float | None
    distance_m: float | None

    def public(self) -> dict[str, Any]:
        """The event's data."""
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "speed_kmh": self.speed_kmh,
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
        }


@dataclass(slots=True)
class _Parked:
    locked: bool | None = None
    power: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    spot: tuple[float, float] | None = None
    alerted: bool = False


@dataclass
class MovementGuard:
    """Pure and synchronous: feed it one car's messages in order, it returns movements."""

    speed_kmh: float = 5.0
    radius_m: float = 50.0
    _cars: dict[int, _Parked] = field(default_factory=dict)

    def correct(self, vehicle_id: int, locked: bool | None, power: str | None) -> bool:
        """Take the car's lock and ignition from elsewhere (the stored latest state, which every
        ingest worker writes); returns whether the car still counts as parked. Not parked:
        the episode ends here (the next parking starts a new spot and may alert again)."""
        car = self._cars.setdefault(vehicle_id, _Parked())
        car.locked = locked if locked is not None else car.locked
        car.power = power if power is not None else car.power
        parked = bool(car.locked and car.power in PARKED_STATES)
        if not parked:
            car.spot, car.alerted = None, False
        return parked

    def feed(self, row: TelemetryRows) -> Movement | None:
        car = self._cars.setdefault(row.vehicle_id, _Parked())
        locked, power = value(row, n.DRIVER_DOOR_LOCKED), value(row, n.POWER_STATE)
        car.locked = (locked == 1.0) if locked is not None else car.locked
        car.power = power if isinstance(power, str) else car.power
        car.latitude = num(row, n.LATITUDE) if num(row, n.LATITUDE) is not None else car.latitude
        car.longitude = num(row, n.LONGITUDE) if num(row, n.LONGITUDE) is not None else car.longitude
        if not (car.locked and car.power in PARKED_STATES):
            car.spot, car.alerted = None, False
            return None
        here = (
            (car.latitude, car.longitude) if car.latitude is not None and car.longitude is not None else None
        )
        if car.spot is None:
            car.spot = here
        speed = num(row, n.SPEED)
        moved = distance_m(*car.spot, *here) if car.spot and here else None
        if car.alerted or not ((speed or 0.0) > self.speed_kmh or (moved or 0.0) > self.radius_m):
            return None
        car.alerted = True
        return Movement(row.vehicle_id, row.seq, row.ts_ms, car.latitude, car.longitude, speed, moved)
