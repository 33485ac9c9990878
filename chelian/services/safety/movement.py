"""The unauthorised-movement alarm: a parked, locked car that moves is being towed or stolen.

A car that is locked (driver door) with the ignition OFF/LOCK and then goes faster than
`speed_kmh` or ends up more than `radius_m` from where it was parked raises one alert per
parked episode, re-armed by unlocking or switching on. The radius is what tells GPS jitter
of a parked car (typically 5-20 m) from real movement. The parking spot is remembered in
memory: after a restart the first position seen while parked becomes the spot.

`MovementGuard` is the rule (pure: one car's messages in, movements out); `MovementObserver`
runs it in ingest and announces `unauthorised_movement_detected`, after checking what other
ingest workers may have seen (docs/safety.md, "Several ingest workers").

Example:
    guard = MovementGuard(speed_kmh=5.0, radius_m=50.0)
    guard.feed(row)        # a Movement once the parked car left its spot, else None
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Engine, select

from chelian.ingest.batch import TelemetryRows, WriteResult
from chelian.services.safety import names as n
from chelian.services.safety.announce import Announcer
from chelian.services.safety.geo import distance_m, num, value
from chelian.storage.tables import latest_state
from chelian.storage.tables_rules import alerts

log = logging.getLogger("chelian.safety.movement")

PARKED_STATES: Final = frozenset({"OFF", "LOCK"})
REPEAT_ALERT_MS: Final = 30 * 60_000
"""Unauthorised movement of a car already alerted this recently is the same theft."""


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


class MovementObserver:
    """Ingest commit observer: the unauthorised-movement alarm."""

    def __init__(self, engine: Engine, announcer: Announcer, guard: MovementGuard | None = None) -> None:
        self.engine = engine
        self.announcer = announcer
        self.guard = guard or MovementGuard()

    def on_committed(self, result: WriteResult) -> None:
        rows = sorted(result.new_telemetry, key=lambda m: (m.vehicle_id, m.ts_ms, m.seq))
        for movement in filter(None, map(self.guard.feed, rows)):
            if not self._still_parked(movement.vehicle_id):
                log.info("unauthorised_movement_dismissed vehicle_id=%d seq=%d: unlocked or switched on "
                         "in a message this worker did not see", movement.vehicle_id, movement.seq)
                continue
            if self._alerted_lately(movement):
                log.info("unauthorised_movement_repeated vehicle_id=%d seq=%d: already alerted",
                         movement.vehicle_id, movement.seq)
                continue
            vin = self.announcer.vin(movement.vehicle_id)
            log.warning("unauthorised_movement_detected vin=%s seq=%d", vin, movement.seq)
            self.announcer.publish(n.UNAUTHORISED_MOVEMENT_DETECTED, movement.vehicle_id, movement.ts_ms,
                                   f"unauthorised:{vin}:{movement.seq}", movement.public())

    def _still_parked(self, vehicle_id: int) -> bool:
        """Check the guard's memory against the stored latest state before alarming anyone.

        With several ingest workers, the unlock and ignition-on of the owner driving off may
        have gone to another worker; this worker's memory would still say "locked and off"
        and a normal drive would look like a theft. The latest state holds what every worker
        stored, newest device time first, so it has the unlock (once committed)."""
        ls = latest_state.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(ls.path, ls.value_num, ls.value_text).where(
                ls.vehicle_id == vehicle_id, ls.path.in_((n.DRIVER_DOOR_LOCKED, n.POWER_STATE)))).all()
        stored = {path: (num_, text) for path, num_, text in rows}
        locked = stored.get(n.DRIVER_DOOR_LOCKED, (None, None))[0]
        power = stored.get(n.POWER_STATE, (None, None))[1]
        return self.guard.correct(vehicle_id, None if locked is None else locked == 1.0, power)

    def _alerted_lately(self, movement: Movement) -> bool:
        """Whether this car's theft was already alerted (by another ingest worker, whose own
        parking spot saw the same move) within REPEAT_ALERT_MS: one theft, one alert."""
        c = alerts.c
        with self.engine.connect() as conn:
            found = conn.execute(select(c.id).where(
                c.vehicle_id == movement.vehicle_id, c.type == n.UNAUTHORISED_MOVEMENT_DETECTED,
                c.ts_ms >= movement.ts_ms - REPEAT_ALERT_MS, c.ts_ms <= movement.ts_ms).limit(1)).first()
        return found is not None
