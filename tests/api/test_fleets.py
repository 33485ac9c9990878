"""Fleet operators over the API: they use the fleet's cars like owners do, and nothing else."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from chelian.services.fleet import fleets
from chelian.storage.tables import commands, users
from tests.api.conftest import VIN_A, VIN_B, add_car, make_owner, put_state
from tests.services.commands.signing import SigningKey


@pytest.fixture
def people(client, engine):
    """ana owns VIN_A, ben owns VIN_B; ops operates fleet "north", which holds ben's car only."""
    ana, ben, ops = (make_owner(client, f"{n}@example.com") for n in ("ana", "ben", "ops"))
    add_car(client, ana, VIN_A)
    add_car(client, ben, VIN_B)
    fleets.create_fleet(engine, "north")
    fleets.add_vehicles(engine, "north", [VIN_B])
    fleets.add_operator(engine, "north", ops.email)
    return ana, ben, ops


def vins(client, who) -> list[str]:
    return [v["vin"] for v in client.get("/api/v1/vehicles", headers=who.headers).json()["data"]]


def test_an_operator_sees_and_reads_the_fleet_car_of_another_owner(client, engine, people):
    ana, ben, ops = people
    assert vins(client, ops) == [VIN_B]
    assert client.get(f"/api/v1/vehicles/{VIN_B}", headers=ops.headers).status_code == 200
    put_state(engine, VIN_B, {"Vehicle.Speed": 42.0}, ts_ms=1_700_000_000_000)
    state = client.get(f"/api/v1/vehicles/{VIN_B}/state", headers=ops.headers)
    assert state.status_code == 200 and "Vehicle.Speed" in str(state.json())


def test_an_operator_gets_404_for_a_car_outside_the_fleet(client, people, service):
    ana, ben, ops = people
    for path in ("", "/state", "/events"):
        r = client.get(f"/api/v1/vehicles/{VIN_A}{path}", headers=ops.headers)
        assert r.status_code == 404 and "no vehicle" in r.json()["detail"], path
    r = client.post(f"/api/v1/vehicles/{VIN_A}/commands", headers=ops.headers, json={"type": "lock"})
    assert r.status_code == 404 and service.sent == []


def test_plain_owners_still_see_only_their_own_cars(client, people):
    ana, ben, ops = people
    assert vins(client, ana) == [VIN_A]
    assert vins(client, ben) == [VIN_B]
    assert client.get(f"/api/v1/vehicles/{VIN_B}", headers=ana.headers).status_code == 404


def test_an_operators_command_is_sent_and_audited_as_the_operator(client, engine, people, service):
    ana, ben, ops = people
    r = client.post(f"/api/v1/vehicles/{VIN_B}/commands", headers=ops.headers, json={"type": "lock"})
    assert r.status_code == 202, r.text
    assert [vin for _, vin, _ in service.sent] == [VIN_B]
    with engine.connect() as conn:
        requested_by = conn.execute(select(users.c.email)
                                    .join(commands, commands.c.requested_by == users.c.id)
                                    .where(commands.c.id == r.json()["id"])).scalar_one()
    assert requested_by == ops.email
    read = client.get(f"/api/v1/vehicles/{VIN_B}/commands/{r.json()['id']}", headers=ops.headers)
    assert read.status_code == 200 and read.json()["type"] == "lock"
    assert client.get(f"/api/v1/vehicles/{VIN_B}/commands", headers=ben.headers).json()["count"] == 1


def test_removing_the_car_from_the_fleet_removes_the_operators_access(client, engine, people, service):
    ana, ben, ops = people
    fleets.remove_vehicles(engine, "north", [VIN_B])
    assert vins(client, ops) == []
    assert client.get(f"/api/v1/vehicles/{VIN_B}", headers=ops.headers).status_code == 404
    r = client.post(f"/api/v1/vehicles/{VIN_B}/commands", headers=ops.headers, json={"type": "lock"})
    assert r.status_code == 404 and service.sent == []
    assert vins(client, ben) == [VIN_B]


def test_only_the_legal_owner_may_pin_the_cars_key(client, people):
    ana, ben, ops = people
    url = f"/api/v1/vehicles/{VIN_B}/agent-key"
    key = SigningKey()
    r = client.put(url, headers=ops.headers, json={"public_key": key.public})
    assert r.status_code == 404 and "owner" in r.json()["detail"]
    assert client.put(url, headers=ben.headers, json={"public_key": key.public}).status_code == 200
    assert client.get(url, headers=ops.headers).json()["kid"] == key.kid  # reading it is fine
    assert client.delete(url, headers=ops.headers).status_code == 404


def test_fleets_lists_what_the_caller_operates_with_owners(client, people):
    ana, ben, ops = people
    body = client.get("/api/v1/fleets", headers=ops.headers).json()
    assert body["count"] == 1
    (north,) = body["data"]
    assert north["name"] == "north" and north["operators"] == [ops.email]
    assert [(v["vin"], v["owner"]) for v in north["vehicles"]] == [(VIN_B, ben.email)]
    assert client.get("/api/v1/fleets/north", headers=ops.headers).json() == north
    assert client.get("/api/v1/fleets", headers=ben.headers).json() == {"data": [], "count": 0}
    r = client.get("/api/v1/fleets/north", headers=ben.headers)
    assert r.status_code == 404 and r.json()["detail"] == "no fleet north that you operate"
    assert client.get("/api/v1/fleets").status_code == 401


def test_an_operator_may_fence_a_fleet_car_but_not_another(client, people):
    ana, ben, ops = people
    circle = {"latitude": 42.5, "longitude": 1.5, "radius_m": 200}
    r = client.post("/api/v1/geofences", headers=ops.headers,
                    json={"name": "depot", "vin": VIN_B, "circle": circle})
    assert r.status_code == 201, r.text
    listed = client.get("/api/v1/geofences", headers=ops.headers).json()["data"]
    assert [f["vin"] for f in listed] == [VIN_B]
    r = client.post("/api/v1/geofences", headers=ops.headers,
                    json={"name": "x", "vin": VIN_A, "circle": circle})
    assert r.status_code == 404
