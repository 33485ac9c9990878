"""Real roads for the simulator: an OpenStreetMap extract as a `RoadNetwork` with routing.

pyrosm reads the drivable ways of a `.osm.pbf` extract and splits them at every OSM node,
so each edge is a straight segment between two consecutive points of a road: a car moving
in a straight line from node to node (as `motion.py` does) stays exactly on the road. Ways
are made directed by their `oneway` tags (roundabouts included), and only the largest
strongly connected part is kept, so a car can always drive on and always get back (the odd
road that leaves the extract at its border would otherwise trap cars there).

Speed limits come from `maxspeed` where it is a number (km/h, or "NN mph"), else from the
road class. Cars stop at traffic lights and stop signs as the tags say, at other junctions
sometimes (traffic), and never at the nodes that only shape a road's curve.

Routing is A* over networkx with the straight-line distance as heuristic, between node ids
that are plain ints (0..n-1) like the street grid's.

Example:
    roads = OsmRoads.load(Path("andorra.osm.pbf"))
    a, b = 0, len(roads.nodes()) - 1
    roads.route(a, b)        # [0, 17, 18, ..., b]: node ids along the shortest drive
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from chelian.sim.roads import LocalProjection, Point

KMH = 1 / 3.6
DEFAULT_LIMIT_KMH = {
    "motorway": 110, "trunk": 90, "primary": 70, "secondary": 60, "tertiary": 50, "unclassified": 40,
    "residential": 30, "living_street": 10, "service": 20, "road": 40,
    "motorway_link": 60, "trunk_link": 50, "primary_link": 50, "secondary_link": 40, "tertiary_link": 40,
}
FALLBACK_KMH = 40
MAX_KMH = 130
STOP_BY_TAG = {"traffic_signals": 0.5, "stop": 0.95, "give_way": 0.3, "mini_roundabout": 0.3}
JUNCTION_STOP = 0.2
"""Chance of stopping at a junction without signs: traffic, pedestrians, a give-way."""
ONEWAY_FORWARD = {"yes", "true", "1"}
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph)?\s*$")


def parse_maxspeed(value: Any, highway: str) -> float:
    """km/h from an OSM `maxspeed` (the first of "90;30" lists), else the road class default."""
    if isinstance(value, str):
        match = _NUMBER.match(value.split(";")[0])
        if match:
            kmh = float(match[1]) * (1.609344 if match[2] else 1.0)
            if kmh > 0:
                return min(kmh, MAX_KMH)
    return float(DEFAULT_LIMIT_KMH.get(highway, FALLBACK_KMH))


@dataclass(frozen=True)
class OsmRoads:
    projection: LocalProjection
    positions: tuple[Point, ...]
    graph: nx.DiGraph
    """Nodes 0..n-1; edges carry `length` (m) and `limit` (m/s)."""
    stops: tuple[float, ...]
    source: str = ""
    _succ: tuple[list[int], ...] = field(init=False, repr=False)
    _limits: dict[tuple[int, int], float] = field(init=False, repr=False)

    def __post_init__(self) -> None:  # plain lookups: the motion model asks on every segment
        object.__setattr__(self, "_succ", tuple(sorted(self.graph.successors(n)) for n in self.nodes()))
        limits = {(a, b): float(d["limit"]) for a, b, d in self.graph.edges(data=True)}
        object.__setattr__(self, "_limits", limits)

    @classmethod
    def load(cls, path: Path) -> OsmRoads:
        """Read the drivable roads of an `.osm.pbf` extract (a few seconds for a small country)."""
        from pyrosm import OSM  # heavy (pandas, geopandas): only when a map is asked for

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no OSM extract at {path}")
        nodes, edges = OSM(str(path)).get_network(network_type="driving", nodes=True)
        if edges is None or len(edges) == 0:
            raise ValueError(f"{path} has no drivable roads")
        return cls.from_frames(nodes, edges, source=str(path))

    @classmethod
    def from_frames(cls, nodes: Any, edges: Any, source: str = "") -> OsmRoads:
        points = zip(nodes["lon"].tolist(), nodes["lat"].tolist(), strict=True)
        lonlat = dict(zip(nodes["id"].tolist(), points, strict=True))
        tags = dict(zip(nodes["id"].tolist(), nodes["tags"].tolist(), strict=True)) if "tags" in nodes else {}
        g = nx.DiGraph()
        columns = [edges[c].tolist() if c in edges else [None] * len(edges)
                   for c in ("u", "v", "length", "highway", "oneway", "maxspeed", "junction")]
        for u, v, length, highway, oneway, maxspeed, junction in zip(*columns, strict=True):
            if u == v or u not in lonlat or v not in lonlat:
                continue
            limit = parse_maxspeed(maxspeed, str(highway)) * KMH
            one = str(oneway).lower() if isinstance(oneway, str) else ""
            pairs = [(u, v)] if one in ONEWAY_FORWARD or junction == "roundabout" else \
                [(v, u)] if one == "-1" else [(u, v), (v, u)]
            for a, b in pairs:
                if not g.has_edge(a, b) or g[a][b]["length"] > length:
                    g.add_edge(a, b, length=float(length), limit=limit)
        if g.number_of_nodes() == 0:
            raise ValueError("no drivable road segments")
        core = max(nx.strongly_connected_components(g), key=len)
        osm_ids = sorted(core)
        index = {osm_id: i for i, osm_id in enumerate(osm_ids)}
        lat0 = sum(lonlat[o][1] for o in osm_ids) / len(osm_ids)
        lon0 = sum(lonlat[o][0] for o in osm_ids) / len(osm_ids)
        projection = LocalProjection(lat0, lon0)
        positions = tuple(projection.to_local(lonlat[o][1], lonlat[o][0]) for o in osm_ids)
        graph = nx.relabel_nodes(g.subgraph(core), index, copy=True)
        stops = tuple(_stop_probability(graph, i, tags.get(o)) for i, o in enumerate(osm_ids))
        return cls(projection, positions, graph, stops, source)

    # --- RoadNetwork ------------------------------------------------------------------------

    def nodes(self) -> range:
        return range(len(self.positions))

    def position(self, node: int) -> Point:
        return self.positions[node]

    def neighbours(self, node: int) -> list[int]:
        return self._succ[node]

    def speed_limit_ms(self, a: int, b: int) -> float:
        return self._limits[(a, b)]

    def stop_probability(self, node: int) -> float:
        return self.stops[node]

    # --- routing ----------------------------------------------------------------------------

    def route(self, a: int, b: int) -> list[int] | None:
        """The shortest drive from node a to node b, both included; None if there is none."""
        pos = self.positions

        def straight(x: int, y: int) -> float:
            return math.dist(pos[x], pos[y])

        try:
            return list(nx.astar_path(self.graph, a, b, heuristic=straight, weight="length"))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None

    def route_length_m(self, route: list[int]) -> float:
        return sum(self.graph[x][y]["length"] for x, y in zip(route, route[1:], strict=False))


def _stop_probability(graph: nx.DiGraph, node: int, tags: Any) -> float:
    tag = tags.get("highway") if isinstance(tags, dict) else None
    if tag in STOP_BY_TAG:
        return STOP_BY_TAG[tag]
    ways = set(graph.successors(node)) | set(graph.predecessors(node))
    return JUNCTION_STOP if len(ways) > 2 else 0.0
