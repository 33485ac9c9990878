"""What a simulated car needs from a road network, and the flat-earth maths to place it on a map.

The demo drives on a generated street grid (`grid.py`); the later agent-based simulator will
drive on OpenStreetMap roads. Both implement `RoadNetwork`, so the motion model in
`motion.py` never learns which one it is on.

Positions are metres east/north of an origin (a local tangent plane): over the few
kilometres a simulated car covers, the equirectangular approximation is off by centimetres,
and it keeps the kinematics in plain metres.

Example:
    proj = LocalProjection(42.2808, -83.7430)
    proj.to_latlon(100.0, 0.0)     # ~ (42.2808, -83.72087): 100 m east of the origin
    bearing_deg((0, 0), (0, 10))   # 0.0 (north); (10, 0) would be 90.0 (east)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

Point = tuple[float, float]
"""(east_m, north_m) relative to the network's origin."""

METRES_PER_DEGREE_LAT = 111_320.0


class RoadNetwork(Protocol):
    """A directed graph of drivable roads with node positions in local metres."""

    projection: LocalProjection

    def nodes(self) -> range | list[int]:
        """Every node id (ints, so a simulation state stays small and comparable)."""
        ...

    def position(self, node: int) -> Point: ...

    def neighbours(self, node: int) -> list[int]:
        """Nodes reachable from `node` along one road segment, in a stable order (determinism)."""
        ...

    def speed_limit_ms(self, a: int, b: int) -> float:
        """The legal speed on the segment a -> b, in m/s."""
        ...

    def stop_probability(self, node: int) -> float:
        """Chance that a car arriving at `node` has to stop (stop sign, red light, traffic)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalProjection:
    """Local metres <-> WGS84 degrees around an origin (equirectangular approximation)."""

    lat0: float
    lon0: float

    def to_latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        lat = self.lat0 + north_m / METRES_PER_DEGREE_LAT
        lon = self.lon0 + east_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians(self.lat0)))
        return lat, lon

    def to_local(self, lat: float, lon: float) -> Point:
        north = (lat - self.lat0) * METRES_PER_DEGREE_LAT
        east = (lon - self.lon0) * METRES_PER_DEGREE_LAT * math.cos(math.radians(self.lat0))
        return east, north


def distance_m(a: Point, b: Point) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


def bearing_deg(a: Point, b: Point) -> float:
    """Compass bearing from a to b: 0 = north, 90 = east, always in [0, 360)."""
    return math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0


def turn_angle_deg(heading_in: float, heading_out: float) -> float:
    """How sharply a car turns between two headings, 0 (straight on) to 180 (U-turn)."""
    diff = abs(heading_out - heading_in) % 360.0
    return 360.0 - diff if diff > 180.0 else diff
