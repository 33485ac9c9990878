"""The push hub: updates are coalesced per car and routed only to the car owner's subscriptions."""

from __future__ import annotations

from sqlalchemy import event as sa_event

from chelian.web.push import PushHub
from tests.web.conftest import committed, event, position, status


def test_updates_of_one_car_coalesce_into_its_latest_position(engine, ana):
    hub = PushHub(engine)
    sub = hub.subscribe(ana.user_id)
    for seq in range(1, 6):
        hub.on_committed(committed([position(ana.vehicle_id, seq, 42.0 + seq / 1000, -83.0)]))
    batch = sub.take()
    assert list(batch) == [ana.vin]
    assert batch[ana.vin]["lat"] == 42.005
    assert batch[ana.vin]["ts_ms"] == 1_700_000_005_000
    assert batch[ana.vin]["online"] is True
    assert sub.merged == 4
    assert sub.take() == {}  # taken means gone


def test_within_one_commit_the_newest_message_wins_whatever_the_order(engine, ana):
    hub = PushHub(engine)
    sub = hub.subscribe(ana.user_id)
    newer, older = position(ana.vehicle_id, 9, 42.9, -83.0), position(ana.vehicle_id, 3, 42.3, -83.0)
    hub.on_committed(committed([newer, older]))
    assert sub.take()[ana.vin]["lat"] == 42.9


def test_an_owner_never_receives_another_owners_car(engine, ana, ben):
    hub = PushHub(engine)
    sub_a, sub_b = hub.subscribe(ana.user_id), hub.subscribe(ben.user_id)
    moves = [position(ana.vehicle_id, 1, 42.0, -83.0), position(ben.vehicle_id, 1, 43.0, -84.0)]
    hub.on_committed(committed(moves, [event(ben.vehicle_id, "crash_detected")],
                               [status(ben.vehicle_id, False)]))
    assert set(sub_a.take()) == {ana.vin}
    assert set(sub_b.take()) == {ben.vin}


def test_every_open_connection_of_an_owner_gets_the_update(engine, ana):
    hub = PushHub(engine)
    phone, laptop = hub.subscribe(ana.user_id), hub.subscribe(ana.user_id)
    hub.on_committed(committed([position(ana.vehicle_id, 1, 42.0, -83.0)]))
    assert ana.vin in phone.take() and ana.vin in laptop.take()
    hub.unsubscribe(phone)
    assert hub.subscribers == 1


def test_status_changes_and_alert_events_are_pushed_without_a_position(engine, ana):
    hub = PushHub(engine)
    sub = hub.subscribe(ana.user_id)
    events = [event(ana.vehicle_id, "crash_detected"), event(ana.vehicle_id, "trip_ended")]
    hub.on_committed(committed(events=events, statuses=[status(ana.vehicle_id, False)]))
    update = sub.take()[ana.vin]
    assert update["online"] is False
    assert update["alert"] == {"type": "crash_detected", "ts_ms": 1_700_000_000_000}
    assert "lat" not in update


def test_ordinary_events_alone_push_nothing(engine, ana):
    hub = PushHub(engine)
    sub = hub.subscribe(ana.user_id)
    hub.on_committed(committed(events=[event(ana.vehicle_id, "trip_started")]))
    assert sub.take() == {}


def test_with_nobody_watching_a_commit_costs_no_query(engine, ana):
    hub = PushHub(engine)
    queries = []
    sa_event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    hub.on_committed(committed([position(ana.vehicle_id, 1, 42.0, -83.0)]))
    assert queries == []
    sub = hub.subscribe(ana.user_id)
    hub.on_committed(committed([position(ana.vehicle_id, 2, 42.0, -83.0)]))
    hub.on_committed(committed([position(ana.vehicle_id, 3, 42.0, -83.0)]))
    assert len(queries) == 1  # the owner lookup, then cached
    assert sub.take()


def test_a_position_older_than_one_already_pushed_is_left_out(engine, ana):
    """Two ingest processes commit one car's messages in parallel: the older may come second."""
    hub = PushHub(engine)
    sub = hub.subscribe(ana.user_id)
    hub.on_committed(committed([position(ana.vehicle_id, 5, 42.5, -83.0)]))
    assert sub.take()[ana.vin]["lat"] == 42.5
    hub.on_committed(committed([position(ana.vehicle_id, 4, 42.4, -83.0)]))
    assert sub.take() == {}
    crash = event(ana.vehicle_id, "crash_detected")
    hub.on_committed(committed([position(ana.vehicle_id, 3, 42.3, -83.0)], [crash]))
    update = sub.take()[ana.vin]
    assert update["alert"]["type"] == "crash_detected" and "lat" not in update and "ts_ms" not in update
