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
from collections import deque

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
LOOKAHEAD_M = 250.0
"""How far ahead a driver plans: enough to brake from 110 km/h to a stop at BRAKE_PLAN_MS2."""
"""How long a stop at an intersection lasts."""


def corner_speed_ms(angle_deg: float) -> float:
    return next(speed for limit, speed in CORNER_SPEED_MS if angle_deg < limit)


class Geometry:
    """Per network, memoised: how fast one may pass through a node (corner and next limit),
    and segment lengths. Every car on a map asks the same questions; a fleet shares the answers."""

    _shared: dict[int, Geometry] = {}

    def __init__(self, network: RoadNetwork) -> None:
        self.network = network
        self._through: dict[tuple[int, int, int], float] = {}
        self._length: dict[tuple[int, int], float] = {}

    @classmethod
    def of(cls, network: RoadNetwork) -> Geometry:
        geometry = cls._shared.get(id(network))
        if geometry is None or geometry.network is not network:  # ids are reused after GC
            geometry = cls._shared[id(network)] = cls(network)
        return geometry

    def through_speed(self, prev: int, cur: int, nxt: int) -> float:
        key = (prev, cur, nxt)
        speed = self._through.get(key)
        if speed is None:
            pos = self.network.position
            turn = turn_angle_deg(bearing_deg(pos(prev), pos(cur)), bearing_deg(pos(cur), pos(nxt)))
            speed = self._through[key] = min(corner_speed_ms(turn), self.network.speed_limit_ms(cur, nxt))
        return speed

    def length(self, a: int, b: int) -> float:
        length = self._length.get((a, b))
        if length is None:
            length = self._length[(a, b)] = distance_m(self.network.position(a), self.network.position(b))
        return length


class Mover:
    """A car on segment `a -> b`, `offset_m` metres past `a`."""

    def __init__(self, network: RoadNetwork, start_node: int, rng: random.Random) -> None:
        self.network = network
        self._geometry = Geometry.of(network)
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
        self.ahead: deque[tuple[int, bool]] = deque()
        """The nodes after b, in driving order, each with "will stop there": a route being
        followed, extended by random turns so the driver always looks `LOOKAHEAD_M` ahead."""
        self._stop_at_b = False
        self._enter(start_node, self._pick(start_node, None))

    # --- route ------------------------------------------------------------------------------

    def _pick(self, node: int, came_from: int | None) -> int:
        options = self.network.neighbours(node)
        forward = [n for n in options if n != came_from] or options
        return self.rng.choice(forward)

    def _planned(self, node: int) -> tuple[int, bool]:
        return node, self.rng.random() < self.network.stop_probability(node)

    def _fill_ahead(self) -> None:
        """Make the plan reach `LOOKAHEAD_M` past b (a long route already does: stop early)."""
        length = self._geometry.length
        covered, prev, last = 0.0, self.a, self.b
        for node, _ in self.ahead:
            covered += length(last, node)
            prev, last = last, node
            if covered >= LOOKAHEAD_M:
                return
        while covered < LOOKAHEAD_M or not self.ahead:
            nxt = self._pick(last, prev)
            self.ahead.append(self._planned(nxt))
            covered += length(last, nxt)
            prev, last = last, nxt

    def _enter(self, a: int, b: int) -> None:
        """Start down a -> b: look ahead, plan the speed at b, and decide how briskly to drive."""
        self.a, self.b, self.offset_m = a, b, 0.0
        pa, pb = self.network.position(a), self.network.position(b)
        self._length = distance_m(pa, pb)
        if self._length > 0.01:  # two OSM nodes on one spot have no direction: keep the last one
            self.heading_deg = bearing_deg(pa, pb)
        self._fill_ahead()
        self._after = self.ahead[0][0]
        self._end_speed = self._speed_at_b()
        roll = self.rng.random()
        lo, hi = next((lo, hi) for p, lo, hi in TEMPERAMENT if roll < p)
        self._cruise_ms = self.network.speed_limit_ms(a, b) * self.rng.uniform(lo, hi)

    def _speed_at_b(self) -> float:
        """The highest speed at b from which every stop, corner and lower limit within
        `LOOKAHEAD_M` can still be met braking at `BRAKE_PLAN_MS2`."""
        geometry = self._geometry
        prev, cur, stop_here = self.a, self.b, self._stop_at_b or self.finishing
        best, dist = math.inf, 0.0
        for nxt, nxt_stops in self.ahead:
            here = 0.0 if stop_here else geometry.through_speed(prev, cur, nxt)
            best = min(best, math.sqrt(here**2 + 2 * BRAKE_PLAN_MS2 * dist))
            dist += geometry.length(cur, nxt)
            if dist > LOOKAHEAD_M:
                break
            prev, cur, stop_here = cur, nxt, nxt_stops
        return best

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

    def depart(self, route: list[int] | None = None) -> None:
        """Leave a parking spot, along `route` if given (it starts at `next_node`), else at random."""
        if route and len(route) >= 2 and route[0] == self.b:
            self.ahead = deque(self._planned(n) for n in route[1:])
            self._after = route[1]
            self._end_speed = self._speed_at_b()
        if self.offset_m >= self._length:
            self._advance_segment()
        self.parked, self.finishing, self.wait_s = False, False, 0.0

    def _advance_segment(self) -> None:
        node, stop = self.ahead.popleft()
        self._stop_at_b = stop
        self._enter(self.b, node)

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
        self._advance_segment()

    @property
    def next_node(self) -> int:
        """The node the car reaches first when it drives on: where a planned route must start."""
        return self.b

    # --- where the car is -------------------------------------------------------------------

    @property
    def position(self) -> tuple[float, float]:
        (xa, ya), (xb, yb) = self.network.position(self.a), self.network.position(self.b)
        f = self.offset_m / self._length if self._length else 0.0
        return xa + (xb - xa) * f, ya + (yb - ya) * f

    @property
    def latlon(self) -> tuple[float, float]:
        return self.network.projection.to_latlon(*self.position)
