"""Adding and listing cars, and that nobody sees anybody else's."""

from tests.api.conftest import CAR_MQTT_URL, VIN_A, VIN_B, add_car, make_owner


def test_add_car_returns_it_with_one_time_credentials(client, owner):
    r = client.post("/api/v1/vehicles", headers=owner.headers,
                    json={"vin": VIN_A.lower(), "make": "Ford", "model": "Focus", "year": 2019})
    assert r.status_code == 201
    body = r.json()
    assert (body["vin"], body["make"], body["model"], body["year"]) == (VIN_A, "Ford", "Focus", 2019)
    assert body["online"] is False
    creds = body["credentials"]
    assert set(creds) == {"vin", "mqtt_url", "mqtt_username", "mqtt_password"}
    assert creds["vin"] == creds["mqtt_username"] == VIN_A
    assert creds["mqtt_url"] == CAR_MQTT_URL and len(creds["mqtt_password"]) >= 32
    # shown once: reading the car again never returns the secret
    again = client.get(f"/api/v1/vehicles/{VIN_A}", headers=owner.headers).json()
    assert "credentials" not in again and creds["mqtt_password"] not in str(again)


def test_list_is_only_the_callers_cars(client, owner):
    other = make_owner(client, "bo@example.com")
    add_car(client, owner, VIN_B)
    add_car(client, owner, VIN_A)
    assert client.get("/api/v1/vehicles", headers=other.headers).json() == {"data": [], "count": 0}
    listed = client.get("/api/v1/vehicles", headers=owner.headers).json()
    assert listed["count"] == 2 and [v["vin"] for v in listed["data"]] == [VIN_A, VIN_B]


def test_get_one_accepts_lower_case_vin(client, owner, car):
    r = client.get(f"/api/v1/vehicles/{car.lower()}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["vin"] == car


BAD_CARS = [
    ({"vin": "1M8GDM9AXKP04278", "make": "Ford", "model": "Focus", "year": 2019}, 400, "17 characters"),
    ({"vin": "1M8GDM9AXKP042789", "make": "Ford", "model": "Focus", "year": 2019}, 400, "check digit"),
    ({"vin": VIN_A, "make": " ", "model": "Focus", "year": 2019}, 400, "make and model"),
    ({"vin": VIN_A, "make": "Ford", "model": "Focus", "year": 1900}, 400, "year"),
]


def test_add_car_refuses_bad_input_with_reason(client, owner):
    for body, status, reason in BAD_CARS:
        r = client.post("/api/v1/vehicles", headers=owner.headers, json=body)
        assert r.status_code == status and reason in r.json()["detail"], r.text
    assert client.get("/api/v1/vehicles", headers=owner.headers).json()["count"] == 0


def test_add_car_missing_field_is_422_and_duplicate_is_409(client, owner, car):
    r = client.post("/api/v1/vehicles", headers=owner.headers,
                    json={"vin": VIN_B, "make": "VW", "model": "Golf"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "year"]
    other = make_owner(client, "bo@example.com")
    r = client.post("/api/v1/vehicles", headers=other.headers,
                    json={"vin": car, "make": "Ford", "model": "Focus", "year": 2019})
    assert r.status_code == 409 and "already registered" in r.json()["detail"]


PER_CAR = ["", "/state", "/location", "/signals/Vehicle.Speed/history",
           "/signals/Vehicle.Speed/history?every=1m", "/signals/Vehicle.NoSuchSignal/history", "/events"]


def test_another_owners_car_is_404_not_403_on_every_per_car_endpoint(client, owner, car):
    stranger = make_owner(client, "eve@example.com")
    for suffix in PER_CAR:
        r = client.get(f"/api/v1/vehicles/{car}{suffix}", headers=stranger.headers)
        assert r.status_code == 404, suffix
        assert r.json() == {"detail": f"no vehicle {car} in your account"}
        # ...exactly what an unregistered VIN gets, so the VIN's existence does not leak
        r = client.get(f"/api/v1/vehicles/{VIN_B}{suffix}", headers=stranger.headers)
        assert r.status_code == 404 and r.json() == {"detail": f"no vehicle {VIN_B} in your account"}
        # the owner gets through (to a different 404 where there is no position or no such signal)
        r = client.get(f"/api/v1/vehicles/{car}{suffix}", headers=owner.headers)
        assert r.status_code == (404 if "location" in suffix or "NoSuch" in suffix else 200), suffix
        assert "in your account" not in r.text
