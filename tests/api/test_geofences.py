"""Geofences and alert rules over HTTP, on both databases; strangers get 404."""

from __future__ import annotations

from tests.api.conftest import VIN_B, add_car, make_owner

SQUARE = {"type": "Polygon",
          "coordinates": [[[2.0, 48.0], [2.01, 48.0], [2.01, 48.01], [2.0, 48.01], [2.0, 48.0]]]}


def test_create_list_get_delete_circle_and_polygon(client, owner, car):
    r = client.post("/api/v1/geofences", headers=owner.headers,
                    json={"name": "home", "vin": car.lower(),
                          "circle": {"latitude": 48.85, "longitude": 2.35, "radius_m": 150}})
    assert r.status_code == 201, r.text
    home = r.json()
    assert (home["kind"], home["vin"], home["circle"]["radius_m"]) == ("circle", car, 150)
    r = client.post("/api/v1/geofences", headers=owner.headers, json={"name": "depot", "polygon": SQUARE})
    assert r.status_code == 201, r.text
    depot = r.json()
    assert (depot["vin"], depot["polygon"]) == (None, SQUARE)
    listed = client.get("/api/v1/geofences", headers=owner.headers).json()
    assert [g["name"] for g in listed["data"]] == ["home", "depot"]
    assert client.get(f"/api/v1/geofences/{home['id']}", headers=owner.headers).json()["vin"] == car
    assert client.delete(f"/api/v1/geofences/{home['id']}", headers=owner.headers).status_code == 204
    assert client.get(f"/api/v1/geofences/{home['id']}", headers=owner.headers).status_code == 404
    assert client.get("/api/v1/geofences", headers=owner.headers).json()["count"] == 1


def test_invalid_shapes_are_refused(client, owner):
    bow_tie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    for body in ({"name": "x"},
                 {"name": "x", "polygon": bow_tie},
                 {"name": "x", "polygon": {"type": "Point", "coordinates": [0, 0]}},
                 {"name": "x", "circle": {"latitude": 0, "longitude": 0, "radius_m": 10}, "polygon": SQUARE}):
        r = client.post("/api/v1/geofences", headers=owner.headers, json=body)
        assert r.status_code == 400, (body, r.text)
    r = client.post("/api/v1/geofences", headers=owner.headers,
                    json={"name": "x", "circle": {"latitude": 91, "longitude": 0, "radius_m": 10}})
    assert r.status_code == 422


def test_strangers_see_nothing(client, owner, car):
    fence = client.post("/api/v1/geofences", headers=owner.headers,
                        json={"name": "depot", "polygon": SQUARE}).json()
    eve = make_owner(client, "eve@example.com")
    add_car(client, eve, VIN_B)
    assert client.get(f"/api/v1/geofences/{fence['id']}", headers=eve.headers).status_code == 404
    assert client.delete(f"/api/v1/geofences/{fence['id']}", headers=eve.headers).status_code == 404
    assert client.get("/api/v1/geofences", headers=eve.headers).json()["count"] == 0
    r = client.post("/api/v1/geofences", headers=eve.headers,
                    json={"name": "spy", "vin": car, "polygon": SQUARE})
    assert r.status_code == 404
    for path in ("alerts", "alert-rules", "dtcs", "health", "maintenance", "trips", "trips/1"):
        assert client.get(f"/api/v1/vehicles/{car}/{path}", headers=eve.headers).status_code == 404, path


def test_alert_rules_round_trip_and_validation(client, owner, car):
    url = f"/api/v1/vehicles/{car}/alert-rules"
    assert client.get(url, headers=owner.headers).json()["speed_limit_kmh"] is None
    body = {"speed_limit_kmh": 110, "curfew_start": "22:30", "curfew_end": "06:00",
            "timezone": "Europe/Paris"}
    r = client.put(url, headers=owner.headers, json=body)
    assert r.status_code == 200 and r.json() == body
    assert client.get(url, headers=owner.headers).json() == body
    for bad in ({"timezone": "Mars/Olympus"}, {"curfew_start": "25:00", "curfew_end": "06:00"},
                {"curfew_start": "22:00"}):
        assert client.put(url, headers=owner.headers, json=bad).status_code == 400, bad
