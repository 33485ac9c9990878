"""Alerts, DTCs, health, maintenance and trips read back over HTTP, on both databases."""

from __future__ import annotations

from sqlalchemy import insert

from chelian.storage.db import now_ms
from chelian.storage.repositories import alerts as alert_repo
from chelian.storage.repositories import dtcs
from chelian.storage.tables_rules import trips
from tests.api.conftest import put_messages, put_state, vehicle_id


def test_alerts_listed_newest_first_with_type_filter(client, owner, car, engine):
    vid, now = vehicle_id(engine, car), now_ms()
    with engine.begin() as conn:
        alert_repo.record(conn, [(vid, "geofence_entered", now - 3000, "k1", {"geofence_id": 1}),
                                 (vid, "speed_limit_exceeded", now - 2000, "k2", {"speed_kmh": 131.0}),
                                 (vid, "crash_detected", now - 1000, "k3", {}),
                                 (vid, "crash_detected", now - 1000, "k3", {})])  # a repeat lands once
    r = client.get(f"/api/v1/vehicles/{car}/alerts", headers=owner.headers)
    assert [a["type"] for a in r.json()["data"]] == ["crash_detected", "speed_limit_exceeded",
                                                     "geofence_entered"]
    r = client.get(f"/api/v1/vehicles/{car}/alerts?type=geofence_entered&type=crash_detected",
                   headers=owner.headers)
    assert r.json()["count"] == 2


def test_dtcs_health_and_maintenance(client, owner, car, engine):
    vid, now = vehicle_id(engine, car), now_ms()
    with engine.begin() as conn:
        dtcs.save(conn, vid, "P0301", "active", now - 5000, {"Vehicle.Speed": 80.0})
        dtcs.save(conn, vid, "P0420", "active", now - 4000)
        dtcs.save(conn, vid, "P0420", "cleared", now - 1000)
    put_state(engine, car, {"Vehicle.LowVoltageBattery.CurrentVoltage": 12.6,
                            "Vehicle.TraveledDistance": 42_000_000,
                            "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": 190}, now - 1000)
    r = client.get(f"/api/v1/vehicles/{car}/dtcs", headers=owner.headers).json()
    assert [(d["code"], d["status"], d["severity"]) for d in r["data"]] == [("P0301", "active", "high"),
                                                                          ("P0420", "cleared", "low")]
    assert r["data"][0]["freeze_frame"] == {"Vehicle.Speed": 80.0}
    assert client.get(f"/api/v1/vehicles/{car}/dtcs?open=true", headers=owner.headers).json()["count"] == 1
    r = client.post(f"/api/v1/vehicles/{car}/maintenance", headers=owner.headers,
                    json={"name": "oil", "every_km": 15000, "last_done_km": 20000})
    assert r.status_code == 201 and r.json()["due"] is True and r.json()["reasons"] == ["distance"]
    plan_id = r.json()["id"]
    health = client.get(f"/api/v1/vehicles/{car}/health", headers=owner.headers).json()
    assert health["ok"] is False
    assert health["warnings"] == ["Tyre front left pressure low (190 kPa)",
                                  "P0301 Cylinder 1 misfire detected (high)", "oil due"]
    assert health["readings"]["battery_12v_v"]["value"] == 12.6
    r = client.post(f"/api/v1/vehicles/{car}/maintenance/{plan_id}/done", headers=owner.headers, json={})
    assert (r.json()["due"], r.json()["km_left"]) == (False, 15000)
    cleared = client.post(f"/api/v1/vehicles/{car}/dtcs/clear", headers=owner.headers)
    assert cleared.status_code == 202, cleared.text
    assert (cleared.json()["type"], cleared.json()["status"]) == ("clear_dtcs", "queued")


def test_trips_list_and_one_with_track(client, owner, car, engine):
    vid, now = vehicle_id(engine, car), now_ms()
    start = now - 600_000
    with engine.begin() as conn:
        trip_id = conn.execute(insert(trips).values(
            vehicle_id=vid, start_ms=start, end_ms=start + 120_000, start_lat=45.0, start_lon=4.0,
            end_lat=45.01, end_lon=4.0, distance_m=1112.0, max_speed_kmh=62.0, harsh_brakes=1, harsh_accels=0,
            fuel_used_pct=1.0, score=64.0, open=False).returning(trips.c.id)).scalar_one()
    lat, lon = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
    during = [(start + i * 10_000, {lat: 45.0 + i * 0.001, lon: 4.0}) for i in range(13)]
    put_messages(engine, car, during + [(start + 200_000, {lat: 46.0, lon: 4.0})])  # after the trip
    listed = client.get(f"/api/v1/vehicles/{car}/trips", headers=owner.headers).json()
    assert [t["id"] for t in listed["data"]] == [trip_id]
    assert listed["data"][0]["duration_s"] == 120
    one = client.get(f"/api/v1/vehicles/{car}/trips/{trip_id}", headers=owner.headers).json()
    assert len(one["track"]) == 13 and one["track"][-1]["latitude"] == 45.012
    assert one["start_place"] == {"latitude": 45.0, "longitude": 4.0}
    assert client.get(f"/api/v1/vehicles/{car}/trips/{trip_id + 1}", headers=owner.headers).status_code == 404
