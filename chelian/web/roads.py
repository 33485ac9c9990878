"""The offline basemap: the roads the simulator drives on, as GeoJSON for the browser to draw.

Why chelian draws its own roads: a self-hosted console must work without a tile server or
any CDN, and the roads that matter are exactly the ones the cars drive on. Any
`RoadNetwork` (the generated street grid today, OpenStreetMap roads via `chelian.sim.osm`
once that lands) becomes line features: each undirected segment once, tagged by its speed
limit so the client can draw faster roads wider.

Which network: `app.state.road_network` when the process that serves the API also drives the
cars on something else (set it to `fleet.network`, e.g. OSM roads); otherwise the default
grid, built once per process: it is deterministic from its seed and centre, so the server
draws the same city `chelian demo` / `chelian sim` drive on with their defaults (seed 0,
centred on Ann Arbor).

Example:
    roads_geojson(default_network(), bbox=(-83.76, 42.27, -83.72, 42.29))
    # {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {...}, ...}]}
"""

from __future__ import annotations

import functools
from typing import Any

from chelian.errors import ValidationError
from chelian.sim.fleet import DEFAULT_CENTRE
from chelian.sim.grid import StreetGrid
from chelian.sim.roads import RoadNetwork

BBox = tuple[float, float, float, float]
"""(min_lon, min_lat, max_lon, max_lat), the GeoJSON / OGC order."""
FAST_ROAD_MS = 50 / 3.6
"""Segments at or above this speed limit are drawn as main roads."""


@functools.cache
def default_network(seed: int = 0) -> RoadNetwork:
    """The street grid a default simulated fleet drives on."""
    return StreetGrid.generate(*DEFAULT_CENTRE, seed=seed)


def network_for(app_state: Any) -> RoadNetwork:
    return getattr(app_state, "road_network", None) or default_network()


def parse_bbox(raw: str | None) -> BBox | None:
    """`min_lon,min_lat,max_lon,max_lat` -> a tuple; ValidationError (400) with the reason."""
    if raw is None or not raw.strip():
        return None
    try:
        parts = tuple(float(p) for p in raw.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise ValidationError(f"bbox must be min_lon,min_lat,max_lon,max_lat (four numbers), got {raw!r}")
    min_lon, min_lat, max_lon, max_lat = parts
    if min_lon > max_lon or min_lat > max_lat:
        raise ValidationError("bbox minimum must not exceed its maximum")
    return min_lon, min_lat, max_lon, max_lat


def roads_geojson(network: RoadNetwork, bbox: BBox | None = None) -> dict[str, Any]:
    """Every road segment with at least one end inside `bbox` (all of them without one)."""
    proj = network.projection
    coords = {n: _lonlat(proj.to_latlon(*network.position(n))) for n in network.nodes()}

    def inside(point: tuple[float, float]) -> bool:
        return bbox is None or (bbox[0] <= point[0] <= bbox[2] and bbox[1] <= point[1] <= bbox[3])

    features = []
    for a in network.nodes():
        for b in network.neighbours(a):
            if b < a and a in network.neighbours(b):
                continue  # a two-way road: drawn once, from its lower node
            if not (inside(coords[a]) or inside(coords[b])):
                continue
            limit = network.speed_limit_ms(a, b)
            features.append({
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [coords[a], coords[b]]},
                "properties": {"kind": "main" if limit >= FAST_ROAD_MS else "street",
                               "speed_limit_kmh": round(limit * 3.6)},
            })
    return {"type": "FeatureCollection", "features": features}


def _lonlat(latlon: tuple[float, float]) -> tuple[float, float]:
    return round(latlon[1], 6), round(latlon[0], 6)
