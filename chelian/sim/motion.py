"""How a car moves along a road network: route choice, speed, braking for turns and stops.

Pure kinematics with no clock and no I/O: `step(dt_s)` advances the car and returns the
metres covered. The driver picks the next road at random (never a U-turn unless the road
ends), cruises near the speed limit with a per-segment temperament, brakes comfortably to
slow for corners and to stop where the intersection asks for it, and waits a little there.
Integration runs in sub-steps of at most 0.1 s so a 1 Hz caller still gets smooth braking.
"""

from __future__ import annotations

import math
import random

from chelian.sim.roads import RoadNetwork, bearing_deg, distance_m, turn_angle_deg

SUBSTEP_S = 0.1
ACCEL_MS2 = 2.0
"""Comfortable acceleration from rest; real cars manage 3-4 m/s^2 flat out."""
BRAKE_PLAN_MS2 = 2.0
"""The deceleration the driver plans with, so stops look like stops, not crashes."""
BRAKE_MAX_MS2 = 4.0
CORNER_SPEED_MS = ((30.0, math.inf), (135.0, 18 / 3.6), (180.1, 8 / 3.6))
"""(up to this turn angle in degrees, highest speed through the corner); straight on is free."""
TEMPERAMENT = ((0.9, 0.8, 1.05), (1.0, 0.3, 0.6))
"""(cumulative probability, lowest, highest) fraction of the limit: mostly near it, sometimes traffic."""
WAIT_S = (2.0, 20.0)
"""How long a stop at an intersection lasts."""


def corner_speed_ms(angle_deg: float) -> float:
    return next(speed for limit, speed in CORNER_SPEED_MS if angle_deg < limit)


class Mover:
    """A car on segment `a -> b`, `offset_m` metres past `a`."""

    def __init__(self, network: RoadNetwork, start_node: int, rng: random.Random) -> None:
        self.network = network
        self.rng = rng
        self.a = self.b = start_node
        self.offset_m = 0.0
        self.speed_ms = 0.0
        self.accel_ms2 = 0.0
        self.wait_s = 0.0
        self.parked = True
        self.finishing = False
        """True once `finish` was called: the car parks at the next intersection it can stop at."""
        self._length = 0.0
        self._after = start_node
        self._end_speed = 0.0
        self._cruise_ms = 0.0
        self.heading_deg = 0.0
        self._enter(start_node, self._choose_next(start_node, None))

    # --- route ------------------------------------------------------------------------------

    def _choose_next(self, node: int, came_from: int | None) -> int:
        options = self.network.neighbours(node)
        forward = [n for n in options if n != came_from] or options
        return self.rng.choice(forward)

    def _enter(self, a: int, b: int) -> None:
        """Start down a -> b: decide the next turn, whether to stop at b, and how briskly to drive."""
        self.a, self.b, self.offset_m = a, b, 0.0
        pa, pb = self.network.position(a), self.network.position(b)
        self._length = distance_m(pa, pb)
        self.heading_deg = bearing_deg(pa, pb)
        self._after = self._choose_next(b, a)
        turn = turn_angle_deg(self.heading_deg, bearing_deg(pb, self.network.position(self._after)))
        must_stop = self.rng.random() < self.network.stop_probability(b) or self.finishing
        self._end_speed = 0.0 if must_stop else corner_speed_ms(turn)
        roll = self.rng.random()
        lo, hi = next((lo, hi) for p, lo, hi in TEMPERAMENT if roll < p)
        self._cruise_ms = self.network.speed_limit_ms(a, b) * self.rng.uniform(lo, hi)

    def finish(self) -> None:
        """End the trip: park at the next intersection, or the one after if it is too close to stop."""
        self.finishing = True
        if self.speed_ms**2 <= 2 * BRAKE_PLAN_MS2 * (self._length - self.offset_m):
            self._end_speed = 0.0

    def halt(self) -> None:
        """Brake to a standstill where the car is (a breakdown: pull over, not at a crossing)."""
        self._cruise_ms = 0.0
        self._end_speed = 0.0

    def stop_dead(self, within_s: float) -> None:
        """Come to rest at once, from whatever speed (a collision); the deceleration is reported."""
        self.accel_ms2 = -self.speed_ms / within_s
        self.speed_ms = 0.0
        self.parked = True

    def depart(self) -> None:
        """Leave a parking spot: continue along the planned route."""
        if self.offset_m >= self._length:
            self._enter(self.b, self._after)
        self.parked, self.finishing, self.wait_s = False, False, 0.0

    # --- kinematics ---------------------------------------------------------------------------

    def step(self, dt_s: float) -> float:
        """Advance `dt_s` seconds; return the distance driven in metres."""
        if self.parked:
            self.speed_ms = self.accel_ms2 = 0.0
            return 0.0
        start_speed, moved, left = self.speed_ms, 0.0, dt_s
        while left > 1e-9 and not self.parked:
            h = min(SUBSTEP_S, left)
            left -= h
            if self.wait_s > 0 and self.finishing:
                self.parked, self.wait_s = True, 0.0  # already standing at a crossing: park here
            elif self.wait_s > 0:
                self.wait_s = max(0.0, self.wait_s - h)
            else:
                moved += self._substep(h)
        self.accel_ms2 = (self.speed_ms - start_speed) / dt_s if dt_s > 0 else 0.0
        return moved

    def _substep(self, h: float) -> float:
        end_speed = self._end_speed
        remaining = self._length - self.offset_m
        allowed = math.sqrt(end_speed**2 + 2 * BRAKE_PLAN_MS2 * remaining)  # inf when straight on
        desired = min(self._cruise_ms, allowed)
        change = max(-BRAKE_MAX_MS2 * h, min(ACCEL_MS2 * h, desired - self.speed_ms))
        self.speed_ms = max(0.0, self.speed_ms + change)
        step = self.speed_ms * h
        if end_speed == 0.0 and remaining < 0.5 and self.speed_ms < 1.0:
            step = remaining  # creep the last half metre instead of approaching it forever
        if step < remaining:
            self.offset_m += step
            return step
        self._arrive(stopped=end_speed == 0.0)
        return remaining

    def _arrive(self, *, stopped: bool) -> None:
        if stopped:
            self.speed_ms = 0.0
            if self.finishing:  # park facing the way we came; `depart` turns onto the next road
                self.offset_m, self.parked = self._length, True
                return
            self.wait_s = self.rng.uniform(*WAIT_S)
        self._enter(self.b, self._after)

    # --- where the car is -------------------------------------------------------------------

    @property
    def position(self) -> tuple[float, float]:
        (xa, ya), (xb, yb) = self.network.position(self.a), self.network.position(self.b)
        f = self.offset_m / self._length if self._length else 0.0
        return xa + (xb - xa) * f, ya + (yb - ya) * f

    @property
    def latlon(self) -> tuple[float, float]:
        return self.network.projection.to_latlon(*self.position)
