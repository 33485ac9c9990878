"""The console page and its static files, and the road GeoJSON the basemap is drawn from."""

from __future__ import annotations

import json
from pathlib import Path

from chelian.sim.grid import StreetGrid
from chelian.web.roads import default_network, roads_geojson

WEB = Path(__file__).parents[2] / "chelian" / "web"


def test_the_console_answers_at_the_root(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "/static/vendor/leaflet/leaflet.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


def test_static_files_and_the_vendored_map_library_are_served(client):
    for path in ("/static/app.js", "/static/app.css", "/static/vendor/leaflet/leaflet.js",
                 "/static/vendor/leaflet/leaflet.css"):
        assert client.get(path).status_code == 200, path
    assert client.get("/static/nope.js").status_code == 404


def test_the_vendored_leaflet_is_the_version_the_lock_file_pins():
    lock = json.loads((WEB / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/leaflet"]["version"]
    assert json.loads((WEB / "package.json").read_text())["dependencies"]["leaflet"] == pinned
    assert (WEB / "static" / "vendor" / "VERSIONS").read_text().split() == ["leaflet", pinned]
    assert f"Leaflet {pinned}" in (WEB / "static" / "vendor" / "leaflet" / "leaflet.js").read_text()[:300]


def test_the_api_stays_under_api_v1(client):
    assert client.get("/api/v1/vehicles").status_code == 401


def test_roads_need_a_signed_in_user(client):
    assert client.get("/api/v1/map/roads").status_code == 401


def test_roads_are_the_grid_the_default_fleet_drives_on(client, ana):
    roads = client.get("/api/v1/map/roads", headers=ana.headers).json()
    grid = default_network()
    assert isinstance(grid, StreetGrid)
    two_way_segments = (grid.cols - 1) * grid.rows + (grid.rows - 1) * grid.cols
    assert roads["type"] == "FeatureCollection"
    assert len(roads["features"]) == two_way_segments
    kinds = {f["properties"]["kind"] for f in roads["features"]}
    assert kinds == {"main", "street"}
    lon, lat = roads["features"][0]["geometry"]["coordinates"][0]
    assert abs(lat - 42.28) < 0.05 and abs(lon + 83.74) < 0.05


def test_a_bbox_keeps_only_nearby_roads(client, ana):
    everything = roads_geojson(default_network())
    centre = default_network().projection
    bbox = f"{centre.lon0 - 0.002},{centre.lat0 - 0.002},{centre.lon0 + 0.002},{centre.lat0 + 0.002}"
    near = client.get("/api/v1/map/roads", params={"bbox": bbox}, headers=ana.headers).json()
    assert 0 < len(near["features"]) < len(everything["features"])
    far = client.get("/api/v1/map/roads", params={"bbox": "10,10,11,11"}, headers=ana.headers).json()
    assert far["features"] == []


def test_a_malformed_bbox_is_a_400_with_the_reason(client, ana):
    for bad in ("1,2,3", "a,b,c,d", "5,5,1,1"):
        r = client.get("/api/v1/map/roads", params={"bbox": bad}, headers=ana.headers)
        assert r.status_code == 400, bad
        assert "bbox" in r.json()["detail"]


def test_the_app_can_serve_the_network_its_fleet_drives_on(app, client, ana):
    app.state.road_network = StreetGrid.generate(48.1374, 11.5755, seed=3, blocks=2)  # a tiny Munich
    roads = client.get("/api/v1/map/roads", headers=ana.headers).json()
    assert len(roads["features"]) == 12  # 3 x 3 intersections: 6 + 6 two-way segments
    lon, lat = roads["features"][0]["geometry"]["coordinates"][0]
    assert abs(lat - 48.14) < 0.01 and abs(lon - 11.58) < 0.01
