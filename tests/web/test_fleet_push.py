"""Fleet operators on the live map: their fleet's cars arrive live, other owners' cars never do."""

from __future__ import annotations

import pytest

from chelian.services.fleet import fleets
from chelian.storage.repositories import users
from chelian.web.push import ACCESS_CACHE_S, PushHub
from chelian.web.routes import hub_for
from tests.factories import new_vin
from tests.web.conftest import PASSWORD, committed, event, make_owner, position, status
from tests.web.test_live import connect


@pytest.fixture
def ops(client, engine):
    """A user who owns no car and operates fleet "north"; returns (user id, token)."""
    email = "ops@example.com"
    assert client.post("/api/v1/users", json={"email": email, "password": PASSWORD}).status_code == 201
    login = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    token = login.json()["access_token"]
    fleets.create_fleet(engine, "north")
    fleets.add_operator(engine, "north", email)
    with engine.connect() as conn:
        return users.by_email(conn, email).id, token


def test_the_hub_delivers_fleet_cars_to_the_operator_and_to_the_owner(engine, ana, ben, ops):
    fleets.add_vehicles(engine, "north", [ben.vin])
    hub = PushHub(engine)
    sub_ops, sub_ana, sub_ben = hub.subscribe(ops[0]), hub.subscribe(ana.user_id), hub.subscribe(ben.user_id)
    moves = [position(ana.vehicle_id, 1, 42.0, -83.0), position(ben.vehicle_id, 1, 43.0, -84.0)]
    hub.on_committed(committed(moves, [event(ana.vehicle_id, "crash_detected")],
                               [status(ana.vehicle_id, False)]))
    got_ops = sub_ops.take()
    assert list(got_ops) == [ben.vin] and got_ops[ben.vin]["lat"] == 43.0
    assert set(sub_ben.take()) == {ben.vin}  # the owner still gets their car
    assert set(sub_ana.take()) == {ana.vin}  # and never the fleet's


def test_a_car_taken_out_of_the_fleet_stops_reaching_the_operator(engine, ben, ops):
    fleets.add_vehicles(engine, "north", [ben.vin])
    now = [0.0]
    hub = PushHub(engine, clock=lambda: now[0])
    sub_ops, sub_ben = hub.subscribe(ops[0]), hub.subscribe(ben.user_id)
    hub.on_committed(committed([position(ben.vehicle_id, 1, 43.0, -84.0)]))
    assert ben.vin in sub_ops.take()
    fleets.remove_vehicles(engine, "north", [ben.vin])
    now[0] = ACCESS_CACHE_S + 1  # who may see a car is re-read at most this stale
    hub.on_committed(committed([position(ben.vehicle_id, 2, 43.1, -84.0)]))
    assert sub_ops.take() == {}
    assert ben.vin in sub_ben.take()


def test_an_operators_socket_opens_with_the_fleet_and_receives_it_live(client, app, engine, ana, ben):
    ops = make_owner(client, engine, "ops@example.com", new_vin())  # an operator with a car of their own
    fleets.create_fleet(engine, "north")
    fleets.add_operator(engine, "north", ops.email)
    fleets.add_vehicles(engine, "north", [ben.vin])
    ws_o, o = connect(client, ops.token)
    ws_a, a = connect(client, ana.token)
    try:
        assert o.receive_json()["email"] == ops.email
        cars = {c["vin"]: c for c in o.receive_json()["cars"]}
        assert set(cars) == {ops.vin, ben.vin}
        assert (cars[ben.vin]["fleet"], cars[ben.vin]["owner"]) == ("north", ben.email)
        assert (cars[ops.vin]["fleet"], cars[ops.vin]["owner"]) == (None, None)
        a.receive_json()
        assert [c["vin"] for c in a.receive_json()["cars"]] == [ana.vin]
        hub = hub_for(app)
        hub.on_committed(committed([position(ana.vehicle_id, 1, 42.0, -83.0)]))  # not the operator's
        hub.on_committed(committed([position(ben.vehicle_id, 1, 43.2, -84.0)]))
        hub.on_committed(committed([position(ops.vehicle_id, 1, 44.0, -85.0)]))  # their own: the barrier
        frames = [o.receive_json()]
        while not any(c["vin"] == ops.vin for c in frames[-1]["cars"]):
            frames.append(o.receive_json())
    finally:
        ws_o.__exit__(None, None, None)
        ws_a.__exit__(None, None, None)
    pushed = {c["vin"]: c for f in frames for c in f["cars"]}
    assert set(pushed) == {ben.vin, ops.vin} and pushed[ben.vin]["lat"] == 43.2
