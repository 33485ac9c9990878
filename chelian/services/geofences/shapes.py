"""Fence geometry: validated circles and GeoJSON polygons, and a signed distance in metres.

The detector needs one number per (fix, fence): how far inside (negative) or outside
(positive) the fence the car is, in metres, so hysteresis can be a distance margin whatever
the fence's shape or latitude. Polygons are therefore kept twice: in degrees for the spatial
index, and projected to a local equirectangular plane around their own centroid (metres;
error well under 1 % for fences up to tens of kilometres), where shapely measures distances.

Example:
    fence = circle(1, owner_id=1, vehicle_id=None, name="home", lat=52.0, lon=4.0, radius_m=100)
    fence.signed_distance_m(52.0, 4.0)     # -100.0 (100 m inside)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import shapely
from shapely.geometry import Polygon, shape

from chelian.errors import ValidationError

EARTH_RADIUS_M: Final = 6_371_008.8
M_PER_DEG: Final = math.pi * EARTH_RADIUS_M / 180
CIRCLE: Final = "circle"
POLYGON: Final = "polygon"
MAX_RADIUS_M: Final = 500_000.0
MAX_VERTICES: Final = 10_000


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlon = math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(slots=True)
class Fence:
    id: int
    owner_id: int
    vehicle_id: int | None
    name: str
    kind: str
    bounds: tuple[float, float, float, float]
    """(min_lon, min_lat, max_lon, max_lat) in degrees."""
    lat: float
    lon: float
    radius_m: float = 0.0
    geometry: dict[str, Any] | None = None
    _local: Any = field(default=None, repr=False)
    _cos: float = 1.0

    def signed_distance_m(self, lat: float, lon: float) -> float:
        if self.kind == CIRCLE:
            return haversine_m(self.lat, self.lon, lat, lon) - self.radius_m
        pt = shapely.Point((lon - self.lon) * M_PER_DEG * self._cos, (lat - self.lat) * M_PER_DEG)
        d = shapely.distance(self._local.boundary, pt)
        return -d if shapely.contains_xy(self._local, pt.x, pt.y) else d

    def applies_to(self, vehicle_id: int, owner_id: int | None) -> bool:
        """A car's own fences, and its owner's fences for every car (vehicle_id NULL)."""
        return self.vehicle_id == vehicle_id if self.vehicle_id is not None else self.owner_id == owner_id


def circle(fence_id: int, *, owner_id: int, vehicle_id: int | None, name: str, lat: float, lon: float,
           radius_m: float) -> Fence:
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationError("circle center must be a latitude in [-90, 90] and a longitude in [-180, 180]")
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise ValidationError(f"radius_m must be in (0, {MAX_RADIUS_M:.0f}]")
    dlat = radius_m / M_PER_DEG
    dlon = radius_m / (M_PER_DEG * max(math.cos(math.radians(lat)), 1e-6))
    bounds = (lon - dlon, lat - dlat, lon + dlon, lat + dlat)
    return Fence(fence_id, owner_id, vehicle_id, name, CIRCLE, bounds, lat, lon, radius_m)


def polygon(fence_id: int, *, owner_id: int, vehicle_id: int | None, name: str,
            geometry: dict[str, Any]) -> Fence:
    """A fence from a GeoJSON Polygon ([lon, lat] positions; holes are allowed)."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
        raise ValidationError('geometry must be a GeoJSON object with "type": "Polygon"')
    try:
        geom = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValidationError(f"geometry is not a valid GeoJSON polygon: {exc}") from None
    coords = list(geom.exterior.coords)
    if len(coords) < 4 or len(coords) > MAX_VERTICES:
        raise ValidationError(f"a polygon needs between 3 and {MAX_VERTICES} distinct vertices")
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise ValidationError("polygon positions must be [longitude, latitude] within range")
    if not geom.is_valid or geom.area == 0:
        raise ValidationError("polygon is self-intersecting or empty")
    c = geom.centroid
    cos = math.cos(math.radians(c.y))

    def project(ring):  # type: ignore[no-untyped-def]
        return [((x - c.x) * M_PER_DEG * cos, (y - c.y) * M_PER_DEG) for x, y in ring.coords]

    local = Polygon(project(geom.exterior), [project(h) for h in geom.interiors])
    shapely.prepare(local)
    return Fence(fence_id, owner_id, vehicle_id, name, POLYGON, geom.bounds, c.y, c.x,
                 geometry=geometry, _local=local, _cos=cos)


def expanded_bounds(fence: Fence, margin_m: float) -> tuple[float, float, float, float]:
    """The fence's box grown by `margin_m`: every fix that could change its state falls inside."""
    min_lon, min_lat, max_lon, max_lat = fence.bounds
    dlat = margin_m / M_PER_DEG
    worst_cos = max(min(math.cos(math.radians(min_lat)), math.cos(math.radians(max_lat))), 1e-6)
    dlon = margin_m / (M_PER_DEG * worst_cos)
    return min_lon - dlon, min_lat - dlat, max_lon + dlon, max_lat + dlat
