"""Safety over the REST API: incidents and their lifecycle, roadside tickets, stolen reports,
emergency contacts and webhook subscriptions - each only for the car's owner."""

from __future__ import annotations

from types import SimpleNamespace

from chelian.api.routes.safety_deps import get_safety
from chelian.ingest.batch import EventRow, WriteResult
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.db import now_ms
from chelian.storage.repositories import notifications
from tests.api.conftest import VIN_A, add_car, make_owner, put_state, vehicle_id


def crash(client, engine, vin: str, seq: int = 1, **data) -> None:
    """What ingest would do with the car's `crash` event: hand it to the app's safety observers."""
    safety = get_safety(SimpleNamespace(app=client.app))
    vid, t = vehicle_id(engine, vin), now_ms()
    for observer in safety.observers:
        observer.on_committed(WriteResult([], [EventRow(vid, seq, "crash", t, t, data)], 0))


def test_incident_lifecycle_over_the_api(client, engine, owner, car):
    crash(client, engine, car, lat=48.1, lon=11.5, speed=55.0, heading=270.0, occupants=1)
    base = f"/api/v1/vehicles/{car}/incidents"
    listed = client.get(base, headers=owner.headers).json()
    assert listed["vin"] == car
    [incident] = listed["data"]
    assert (
        incident["status"],
        incident["cause"],
        incident["latitude"],
        incident["speed_before_kmh"],
        incident["occupants"],
    ) == ("open", "car_event", 48.1, 55.0, 1)
    url = f"{base}/{incident['id']}"
    r = client.post(f"{url}/acknowledge", json={"note": "calling the driver"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert client.post(f"{url}/acknowledge", headers=owner.headers).status_code == 409
    assert client.post(f"{url}/notes", json={"note": "no answer"}, headers=owner.headers).status_code == 200
    assert (
        client.post(f"{url}/dispatch", json={"note": "112 called"}, headers=owner.headers).status_code == 200
    )
    closed = client.post(f"{url}/close", json={"note": "all fine"}, headers=owner.headers).json()
    assert closed["status"] == "closed"
    assert [(h["status"], h["note"]) for h in closed["history"]] == [
        ("open", "crash detected (car_event)"),
        ("acknowledged", "calling the driver"),
        ("acknowledged", "no answer"),
        ("dispatched", "112 called"),
        ("closed", "all fine"),
    ]
    assert client.post(f"{url}/explode", headers=owner.headers).status_code == 422
    assert client.get(f"{base}?status=open", headers=owner.headers).json()["data"] == []


def test_owner_cancels_a_false_alarm_and_others_see_nothing(client, engine, owner, car):
    crash(client, engine, car)
    [incident] = client.get(f"/api/v1/vehicles/{car}/incidents", headers=owner.headers).json()["data"]
    stranger = make_owner(client, "stranger@example.com")
    url = f"/api/v1/vehicles/{car}/incidents/{incident['id']}"
    assert client.get(url, headers=stranger.headers).status_code == 404
    assert client.post(f"{url}/cancel", headers=stranger.headers).status_code == 404
    r = client.post(f"{url}/cancel", json={"note": "kerb, not a crash"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    with engine.connect() as conn:
        assert {o.status for o in notifications.for_subject(conn, f"incident:{incident['id']}")} == {
            "cancelled"
        }
    assert client.get(f"/api/v1/vehicles/{car}/incidents/999999", headers=owner.headers).status_code == 404


def test_roadside_request_and_lifecycle(client, engine, owner, car):
    put_state(
        engine,
        car,
        {
            "Vehicle.CurrentLocation.Latitude": 40.4,
            "Vehicle.CurrentLocation.Longitude": -3.7,
            "Vehicle.LowVoltageBattery.CurrentVoltage": 11.4,
        },
        now_ms(),
    )
    base = f"/api/v1/vehicles/{car}/roadside"
    r = client.post(base, json={"problem": "battery", "note": "dead"}, headers=owner.headers)
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert (ticket["source"], ticket["status"], ticket["latitude"], ticket["longitude"]) == (
        "owner",
        "open",
        40.4,
        -3.7,
    )
    assert ticket["health"]["Vehicle.LowVoltageBattery.CurrentVoltage"]["value"] == 11.4
    assert client.post(base, json={"problem": "dragons"}, headers=owner.headers).status_code == 422
    url = f"{base}/{ticket['id']}"
    assert client.post(f"{url}/assign", json={}, headers=owner.headers).status_code == 400
    assert (
        client.post(f"{url}/assign", json={"assignee": "ADAC"}, headers=owner.headers).json()["assignee"]
        == "ADAC"
    )
    assert client.post(f"{url}/en_route", json={"note": "15 min"}, headers=owner.headers).status_code == 200
    done = client.post(f"{url}/resolve", headers=owner.headers).json()
    assert done["status"] == "resolved" and [h["status"] for h in done["history"]] == [
        "open",
        "assigned",
        "en_route",
        "resolved",
    ]
    assert [t["id"] for t in client.get(base, headers=owner.headers).json()["data"]] == [ticket["id"]]


def test_stolen_report_immobilise_and_recovery(client, owner, car):
    base = f"/api/v1/vehicles/{car}/stolen"
    assert client.get(base, headers=owner.headers).status_code == 404
    r = client.post(base, json={"note": "taken at night"}, headers=owner.headers)
    assert r.status_code == 201 and r.json()["status"] == "active"
    assert client.post(base, headers=owner.headers).status_code == 409
    immobilised = client.post(f"{base}/immobilise", headers=owner.headers).json()
    assert immobilised["immobilise_requested_at"] is not None
    # This app runs no command relay, so the request is recorded without a command.
    assert immobilised["immobilise_command_id"] is None
    back = client.post(f"{base}/recovered", json={"note": "found"}, headers=owner.headers).json()
    assert (back["status"], back["recovery_note"], back["track"]) == ("recovered", "found", [])
    assert client.post(f"{base}/immobilise", headers=owner.headers).status_code == 404


def test_emergency_contacts_and_webhooks_belong_to_their_owner(client, owner):
    contacts = "/api/v1/users/me/emergency-contacts"
    assert client.post(contacts, json={"name": "Nobody"}, headers=owner.headers).status_code == 400
    assert (
        client.post(contacts, json={"name": "X", "email": "not-an-email"}, headers=owner.headers).status_code
        == 400
    )
    r = client.post(
        contacts,
        json={"name": "Ana", "email": "ana@example.com", "phone": "+34 600 000 000"},
        headers=owner.headers,
    )
    assert r.status_code == 201
    other = make_owner(client, "other@example.com")
    assert client.get(contacts, headers=other.headers).json() == []
    assert client.delete(f"{contacts}/{r.json()['id']}", headers=other.headers).status_code == 404
    assert [c["name"] for c in client.get(contacts, headers=owner.headers).json()] == ["Ana"]
    assert client.delete(f"{contacts}/{r.json()['id']}", headers=owner.headers).status_code == 204

    hooks = "/api/v1/users/me/webhooks"
    assert client.post(hooks, json={"url": "ftp://x"}, headers=owner.headers).status_code == 400
    assert (
        client.post(
            hooks, json={"url": "https://x.test/h", "events": ["nope"]}, headers=owner.headers
        ).status_code
        == 400
    )
    created = client.post(
        hooks, json={"url": "https://x.test/h", "events": ["incident_opened"]}, headers=owner.headers
    ).json()
    assert created["secret"].startswith("whsec_")
    [listed] = client.get(hooks, headers=owner.headers).json()
    assert listed["secret"] is None and listed["events"] == ["incident_opened"]
    assert client.delete(f"{hooks}/{created['id']}", headers=other.headers).status_code == 404
    assert client.delete(f"{hooks}/{created['id']}", headers=owner.headers).status_code == 204


def test_other_peoples_cars_are_not_found(client, owner):
    add_car(client, owner, VIN_A)
    stranger = make_owner(client, "nosy@example.com")
    for path in ("incidents", "roadside", "stolen"):
        assert client.get(f"/api/v1/vehicles/{VIN_A}/{path}", headers=stranger.headers).status_code == 404


def test_immobilise_goes_through_the_command_service_once(client, engine, owner, car):
    client.app.state.commands = CommandService.from_settings(client.app.state.settings, engine)
    base = f"/api/v1/vehicles/{car}/stolen"
    assert client.post(base, headers=owner.headers).status_code == 201
    first = client.post(f"{base}/immobilise", headers=owner.headers).json()["immobilise_command_id"]
    again = client.post(f"{base}/immobilise", headers=owner.headers).json()["immobilise_command_id"]
    assert first and first == again
    command = client.get(f"/api/v1/vehicles/{car}/commands/{first}", headers=owner.headers)
    assert command.status_code == 200, command.text
    assert command.json()["type"] == "immobilise"


def test_a_stolen_report_shows_the_tracking_commands_it_sent(client, engine, owner, car):
    client.app.state.commands = CommandService.from_settings(client.app.state.settings, engine)
    base = f"/api/v1/vehicles/{car}/stolen"
    reported = client.post(base, headers=owner.headers).json()
    start = reported["tracking_command_id"]
    assert start and reported["tracking_stop_command_id"] is None
    command = client.get(f"/api/v1/vehicles/{car}/commands/{start}", headers=owner.headers).json()
    assert (command["type"], command["args"]) == ("set_tracking", {"interval_ms": 1000, "duration_s": 21600})
    back = client.post(f"{base}/recovered", headers=owner.headers).json()
    assert back["tracking_command_id"] == start
    stop = client.get(f"/api/v1/vehicles/{car}/commands/{back['tracking_stop_command_id']}",
                      headers=owner.headers).json()
    assert (stop["type"], stop["args"]["duration_s"]) == ("set_tracking", 0)

