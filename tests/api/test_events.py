"""A car's events over the API."""

from tests.api.conftest import put_events

T0 = 1_700_000_040_000


def events(client, owner, car, **params):
    return client.get(f"/api/v1/vehicles/{car}/events", headers=owner.headers, params=params)


def test_events_newest_first_with_data_and_times(client, engine, owner, car):
    put_events(engine, car, [(T0, "trip_start", {"odometer_m": 1200}),
                             (T0 + 60_000, "dtc_set", {"codes": ["P0301"]}),
                             (T0 + 120_000, "trip_end", {"distance_m": 5400})])
    body = events(client, owner, car, start=T0, end=T0 + 120_000).json()
    assert body["vin"] == car and body["count"] == 3 and body["truncated"] is False
    assert [e["type"] for e in body["data"]] == ["trip_end", "dtc_set", "trip_start"]
    dtc = body["data"][1]
    assert dtc == {"seq": 2, "type": "dtc_set", "ts": "2023-11-14T22:15:00Z",
                   "received_at": "2023-11-14T22:15:00.001000Z", "data": {"codes": ["P0301"]}}


def test_events_filter_by_type_window_and_limit(client, engine, owner, car):
    put_events(engine, car, [(T0 + i * 1000, "dtc_set" if i % 2 else "trip_start", {"i": i})
                             for i in range(6)])
    only_dtc = events(client, owner, car, start=T0, end=T0 + 10_000, type="dtc_set").json()
    assert [e["data"]["i"] for e in only_dtc["data"]] == [5, 3, 1]
    limited = events(client, owner, car, start=T0, end=T0 + 10_000, limit=2).json()
    assert [e["data"]["i"] for e in limited["data"]] == [5, 4] and limited["truncated"] is True
    window = events(client, owner, car, start=T0 + 1000, end=T0 + 2000).json()
    assert [e["data"]["i"] for e in window["data"]] == [2, 1]


def test_default_window_excludes_old_events(client, engine, owner, car):
    put_events(engine, car, [(T0, "trip_start", {})])  # 2023: long before "the last seven days"
    assert events(client, owner, car).json()["count"] == 0


def test_bad_event_parameters(client, owner, car):
    r = events(client, owner, car, start=T0 + 1, end=T0)
    assert r.status_code == 400 and r.json() == {"detail": "end must not be before start"}
    assert events(client, owner, car, limit=0).status_code == 422
    assert events(client, owner, car, limit=1001).status_code == 422
