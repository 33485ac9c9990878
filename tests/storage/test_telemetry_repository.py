"""Read side of telemetry, on SQLite and PostgreSQL (rows written directly, as ingest would)."""

import itertools

import pytest
from sqlalchemy import insert

from chelian.errors import ValidationError
from chelian.signals import Catalog
from chelian.storage.repositories import events, telemetry, users, vehicles
from chelian.storage.tables import events as events_table
from chelian.storage.tables import latest_state
from chelian.storage.tables import telemetry as telemetry_table
from chelian.storage.values import encode_value

CATALOG = Catalog.builtin()
SPEED = CATALOG.get("Vehicle.Speed")
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000)  # a minute boundary


@pytest.fixture
def car(engine):
    with engine.begin() as conn:
        owner = users.create(conn, "o@example.com", "x", 0)
        return vehicles.create(conn, vin="1M8GDM9AXKP042788", make="Ford", model="Focus", year=2019,
                               owner_id=owner.id, created_ms=0)


_seq = itertools.count(1)


def put_messages(engine, vehicle_id, messages):
    """(ts_ms, {path: value}) pairs, stored as ingest does: one telemetry row per message."""
    with engine.begin() as conn:
        conn.execute(insert(telemetry_table), [
            dict(vehicle_id=vehicle_id, seq=next(_seq), ts_ms=ts, received_ms=ts + 5, signals=signals)
            for ts, signals in messages])


def put_samples(engine, vehicle_id, path, samples):
    put_messages(engine, vehicle_id, [(ts, {path: value}) for ts, value in samples])


def put_state(engine, vehicle_id, values, ts=T0):
    with engine.begin() as conn:
        for path, value in values.items():
            num, text = encode_value(CATALOG.get(path), value)
            conn.execute(insert(latest_state).values(vehicle_id=vehicle_id, path=path, ts_ms=ts,
                                                     received_ms=ts + 7, value_num=num, value_text=text))


def test_latest_state_decodes_types_and_units(engine, car):
    put_state(engine, car.id, {"Vehicle.Speed": 88.5, "Vehicle.IsMoving": True,
                               "Vehicle.TraveledDistance": 12345, "Vehicle.Diagnostics.DTCList": ["P0301"],
                               "Vehicle.LowVoltageSystemState": "ON"})
    with engine.connect() as conn:
        state = telemetry.latest_state(conn, CATALOG, car.id)
    assert state["Vehicle.Speed"].value == 88.5 and state["Vehicle.Speed"].unit == "km/h"
    assert state["Vehicle.IsMoving"].value is True
    assert state["Vehicle.TraveledDistance"].value == 12345
    assert type(state["Vehicle.TraveledDistance"].value) is int
    assert state["Vehicle.Diagnostics.DTCList"].value == ["P0301"]
    assert state["Vehicle.LowVoltageSystemState"].value == "ON"
    assert state["Vehicle.Speed"].ts_ms == T0 and state["Vehicle.Speed"].received_ms == T0 + 7


def test_location_needs_latitude_and_longitude(engine, car):
    with engine.connect() as conn:
        assert telemetry.latest_location(conn, CATALOG, car.id) is None
    put_state(engine, car.id, {"Vehicle.CurrentLocation.Latitude": 52.52})
    with engine.connect() as conn:
        assert telemetry.latest_location(conn, CATALOG, car.id) is None
    put_state(engine, car.id, {"Vehicle.CurrentLocation.Longitude": 13.405, "Vehicle.Speed": 30.0})
    with engine.connect() as conn:
        loc = telemetry.latest_location(conn, CATALOG, car.id)
    assert (loc.latitude, loc.longitude, loc.heading, loc.speed) == (52.52, 13.405, None, 30.0)


def test_history_window_order_and_limit(engine, car):
    put_samples(engine, car.id, "Vehicle.Speed", [(T0 + i * 1000, float(i)) for i in range(10)])
    put_samples(engine, car.id, "Vehicle.AverageSpeed", [(T0 + 1500, 99.0)])  # a message without Speed
    with engine.connect() as conn:
        samples, more = telemetry.history(conn, SPEED, car.id, T0 + 2000, T0 + 5000, limit=100)
        assert [(s.ts_ms, s.value) for s in samples] == [(T0 + i * 1000, float(i)) for i in range(2, 6)]
        assert not more
        samples, more = telemetry.history(conn, SPEED, car.id, T0, T0 + 10_000, limit=3)
        assert [s.value for s in samples] == [0.0, 1.0, 2.0] and more
        samples, more = telemetry.history(conn, SPEED, car.id, T0, T0 + 10_000, limit=10)
        assert len(samples) == 10 and not more


def test_history_picks_one_signal_out_of_messages_and_keeps_types(engine, car):
    put_messages(engine, car.id, [
        (T0, {"Vehicle.Speed": 10, "Vehicle.IsMoving": True, "Vehicle.Diagnostics.DTCList": ["P0301"],
              "Vehicle.LowVoltageSystemState": "ON", "Vehicle.TraveledDistance": 7}),
        (T0 + 1, {"Vehicle.IsMoving": False}),
    ])
    with engine.connect() as conn:
        def values(path):
            samples, _ = telemetry.history(conn, CATALOG.get(path), car.id, T0, T0 + 10, limit=10)
            return [s.value for s in samples]

        assert values("Vehicle.Speed") == [10.0] and type(values("Vehicle.Speed")[0]) is float
        assert values("Vehicle.IsMoving") == [True, False]
        assert all(type(v) is bool for v in values("Vehicle.IsMoving"))
        assert values("Vehicle.Diagnostics.DTCList") == [["P0301"]]
        assert values("Vehicle.LowVoltageSystemState") == ["ON"]
        (odometer,) = values("Vehicle.TraveledDistance")
        assert odometer == 7 and type(odometer) is int
        assert values("Vehicle.AverageSpeed") == []


def test_downsample_per_bucket(engine, car):
    # minute 0: 10, 20, 60 ; minute 1: nothing ; minute 2: 5 ; outside window: 1000
    put_samples(engine, car.id, "Vehicle.Speed", [
        (T0, 10.0), (T0 + 20_000, 20.0), (T0 + 59_999, 60.0), (T0 + 120_000, 5.0), (T0 + 600_000, 1000.0)])
    with engine.connect() as conn:
        buckets = telemetry.downsample(conn, SPEED, car.id, T0, T0 + 180_000, 60_000)
    assert [(b.start_ms, b.avg, b.min, b.max, b.count) for b in buckets] == [
        (T0, 30.0, 10.0, 60.0, 3), (T0 + 120_000, 5.0, 5.0, 5.0, 1)]


def test_downsample_integer_and_boolean_signals(engine, car):
    dist = CATALOG.get("Vehicle.TraveledDistance")
    moving = CATALOG.get("Vehicle.IsMoving")
    put_samples(engine, car.id, dist.path, [(T0, 100), (T0 + 1, 103)])
    put_samples(engine, car.id, moving.path, [(T0, True), (T0 + 1, False), (T0 + 2, True), (T0 + 3, True)])
    with engine.connect() as conn:
        (d,) = telemetry.downsample(conn, dist, car.id, T0, T0 + 59_999, 60_000)
        (m,) = telemetry.downsample(conn, moving, car.id, T0, T0 + 59_999, 60_000)
    assert (d.avg, d.min, d.max, d.count) == (101.5, 100.0, 103.0, 2)
    assert (m.avg, m.count) == (0.75, 4)


def test_downsample_refuses_text_and_too_many_buckets(engine, car):
    with engine.connect() as conn:
        with pytest.raises(ValidationError, match="only numeric"):
            telemetry.downsample(conn, CATALOG.get("Vehicle.LowVoltageSystemState"), car.id, T0, T0 + 1, 1000)
        with pytest.raises(ValidationError, match="buckets"):
            telemetry.downsample(conn, SPEED, car.id, T0, T0 + 30 * 86_400_000, 1000)


def test_events_newest_first_filtered_and_limited(engine, car):
    with engine.begin() as conn:
        conn.execute(insert(events_table), [
            dict(vehicle_id=car.id, seq=i, type="dtc" if i % 2 else "trip_start", ts_ms=T0 + i,
                 received_ms=T0 + i, data={"n": i}) for i in range(6)])
    with engine.connect() as conn:
        got, more = events.for_vehicle(conn, car.id, T0, T0 + 100, limit=10)
        assert [e.seq for e in got] == [5, 4, 3, 2, 1, 0] and not more
        assert got[0].data == {"n": 5}
        got, more = events.for_vehicle(conn, car.id, T0, T0 + 100, type="dtc", limit=2)
        assert [e.seq for e in got] == [5, 3] and more
        got, _ = events.for_vehicle(conn, car.id, T0 + 1, T0 + 2, limit=10)
        assert [e.seq for e in got] == [2, 1]
