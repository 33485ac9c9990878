"""One signal's history over the API: raw points, buckets, defaults, and refused parameters."""

from datetime import UTC, datetime

from chelian.storage.db import now_ms
from tests.api.conftest import put_messages, put_samples

T0 = 1_700_000_040_000  # 2023-11-14T22:14:00Z, a minute boundary
T0_ISO = "2023-11-14T22:14:00Z"


def history(client, owner, car, path="Vehicle.Speed", **params):
    return client.get(f"/api/v1/vehicles/{car}/signals/{path}/history", headers=owner.headers, params=params)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def test_raw_points_oldest_first_with_unit(client, engine, owner, car):
    put_samples(engine, car, "Vehicle.Speed", [(T0 + i * 1000, 10.0 * i) for i in range(5)])
    r = history(client, owner, car, start=T0 + 1000, end=T0 + 3000)
    assert r.status_code == 200
    body = r.json()
    assert (body["vin"], body["path"], body["unit"]) == (car, "Vehicle.Speed", "km/h")
    assert body["start"] == iso(T0 + 1000) and body["end"] == iso(T0 + 3000)
    assert body["points"] == [{"ts": iso(T0 + i * 1000), "value": 10.0 * i} for i in (1, 2, 3)]
    assert body["count"] == 3 and body["truncated"] is False


def test_raw_points_keep_their_type(client, engine, owner, car):
    put_messages(engine, car, [(T0, {"Vehicle.IsMoving": True, "Vehicle.Diagnostics.DTCList": ["P0301"]}),
                               (T0 + 1000, {"Vehicle.IsMoving": False})])
    moving = history(client, owner, car, "Vehicle.IsMoving", start=T0, end=T0 + 5000).json()
    assert [p["value"] for p in moving["points"]] == [True, False]
    dtcs = history(client, owner, car, "Vehicle.Diagnostics.DTCList", start=T0, end=T0 + 5000).json()
    assert dtcs["points"] == [{"ts": iso(T0), "value": ["P0301"]}]


def test_limit_truncates_and_paging_continues(client, engine, owner, car):
    put_samples(engine, car, "Vehicle.Speed", [(T0 + i, float(i)) for i in range(5)])
    first = history(client, owner, car, start=T0, end=T0 + 10, limit=3).json()
    assert [p["value"] for p in first["points"]] == [0.0, 1.0, 2.0] and first["truncated"] is True
    rest = history(client, owner, car, start=T0 + 3, end=T0 + 10, limit=3).json()
    assert [p["value"] for p in rest["points"]] == [3.0, 4.0] and rest["truncated"] is False


def test_iso_and_epoch_ms_are_both_accepted(client, engine, owner, car):
    put_samples(engine, car, "Vehicle.Speed", [(T0, 1.0), (T0 + 60_000, 2.0)])
    as_iso = history(client, owner, car, start=T0_ISO, end="2023-11-14T22:14:30+00:00").json()
    as_ms = history(client, owner, car, start=str(T0), end=str(T0 + 30_000)).json()
    naive = history(client, owner, car, start="2023-11-14T22:14:00", end="2023-11-14T23:14:30+01:00").json()
    assert as_iso["points"] == as_ms["points"] == naive["points"] == [{"ts": iso(T0), "value": 1.0}]


def test_default_window_is_the_last_hour(client, engine, owner, car):
    now = now_ms()
    put_samples(engine, car, "Vehicle.Speed", [(now - 2 * 3_600_000, 1.0), (now - 30 * 60_000, 2.0)])
    body = history(client, owner, car).json()
    assert [p["value"] for p in body["points"]] == [2.0]


def test_downsampled_buckets_have_avg_min_max_count(client, engine, owner, car):
    # minute 0: 10, 20, 60; minute 1: none; minute 2: 5, 7; outside the range: 1000
    put_samples(engine, car, "Vehicle.Speed", [
        (T0, 10.0), (T0 + 20_000, 20.0), (T0 + 59_999, 60.0),
        (T0 + 120_000, 5.0), (T0 + 150_000, 7.0), (T0 + 300_000, 1000.0)])
    r = history(client, owner, car, start=T0_ISO, end=T0 + 179_999, every="1m")
    assert r.status_code == 200
    body = r.json()
    assert body["every"] == "1m" and body["unit"] == "km/h" and "points" not in body
    assert body["buckets"] == [
        {"ts": iso(T0), "avg": 30.0, "min": 10.0, "max": 60.0, "count": 3},
        {"ts": iso(T0 + 120_000), "avg": 6.0, "min": 5.0, "max": 7.0, "count": 2},
    ]


def test_buckets_are_epoch_aligned_and_integer_signals_average_as_floats(client, engine, owner, car):
    path = "Vehicle.TraveledDistance"
    put_samples(engine, car, path, [(T0 + 1_000, 100), (T0 + 9_000, 101), (T0 + 10_000, 200)])
    body = history(client, owner, car, path, start=T0 + 500, end=T0 + 19_999, every="10s").json()
    assert body["buckets"] == [
        {"ts": iso(T0), "avg": 100.5, "min": 100.0, "max": 101.0, "count": 2},
        {"ts": iso(T0 + 10_000), "avg": 200.0, "min": 200.0, "max": 200.0, "count": 1},
    ]


def test_boolean_average_is_the_share_of_true(client, engine, owner, car):
    put_samples(engine, car, "Vehicle.IsMoving", [(T0, True), (T0 + 1, True), (T0 + 2, True),
                                                  (T0 + 3, False)])
    body = history(client, owner, car, "Vehicle.IsMoving", start=T0, end=T0 + 3_599_999, every="1h").json()
    assert [(b["avg"], b["min"], b["max"], b["count"]) for b in body["buckets"]] == [(0.75, 0.0, 1.0, 4)]


def test_unknown_signal_is_404(client, owner, car):
    r = history(client, owner, car, "Vehicle.WarpDrive.Speed")
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown signal Vehicle.WarpDrive.Speed: not in the signal catalog"}


BAD_PARAMETERS = [
    ("Vehicle.Speed", {"start": T0 + 1, "end": T0}, "end must not be before start"),
    ("Vehicle.Speed", {"start": "yesterday"}, "start must be ISO-8601"),
    ("Vehicle.Speed", {"end": "2023-13-40T00:00:00Z"}, "end must be ISO-8601"),
    ("Vehicle.Speed", {"every": "5 minutes"}, "every must be"),
    ("Vehicle.Speed", {"every": "0s"}, "every must be"),
    ("Vehicle.Speed", {"every": "1s", "start": T0, "end": T0 + 86_400_000}, "at most 10000"),
    ("Vehicle.LowVoltageSystemState", {"every": "1m"}, "only numeric signals"),
    ("Vehicle.Diagnostics.DTCList", {"every": "1m"}, "only numeric signals"),
]


def test_bad_parameters_are_400_with_reason(client, owner, car):
    for path, params, reason in BAD_PARAMETERS:
        r = history(client, owner, car, path, **params)
        assert r.status_code == 400 and reason in r.json()["detail"], (path, params, r.text)


def test_limit_out_of_range_is_422(client, owner, car):
    for limit in (0, -1, 10_001, "many"):
        r = history(client, owner, car, limit=limit)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"], (limit, r.text)
