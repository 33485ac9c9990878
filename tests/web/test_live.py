"""The push WebSocket: token in the first message, a snapshot, then only the caller's own cars."""

from __future__ import annotations

import json
import time

import pytest
from starlette.websockets import WebSocketDisconnect

from chelian.web.live import CLOSE_UNAUTHORISED, FLUSH_INTERVAL_S
from chelian.web.routes import hub_for
from tests.fixtures_brokers import wait_until
from tests.web.conftest import committed, position


def connect(client, token: str):
    ws = client.websocket_connect("/api/v1/live")
    session = ws.__enter__()
    session.send_text(json.dumps({"token": token}))
    return ws, session


def test_owner_a_never_receives_owner_bs_car(client, app, ana, ben):
    ws_a, a = connect(client, ana.token)
    ws_b, b = connect(client, ben.token)
    try:
        frames_a = [a.receive_json(), a.receive_json()]
        frames_b = [b.receive_json(), b.receive_json()]
        assert [f["type"] for f in frames_a] == ["hello", "snapshot"]
        assert frames_a[0]["email"] == ana.email
        assert [c["vin"] for c in frames_a[1]["cars"]] == [ana.vin]
        assert [c["vin"] for c in frames_b[1]["cars"]] == [ben.vin]

        hub = hub_for(app)
        for seq in range(1, 4):  # B's car moves first and often; A's last, as a barrier
            hub.on_committed(committed([position(ben.vehicle_id, seq, 43.0 + seq / 100, -84.0)]))
        hub.on_committed(committed([position(ana.vehicle_id, 1, 42.1, -83.1)]))
        while True:
            frame = a.receive_json()
            frames_a.append(frame)
            if any(c["vin"] == ana.vin for c in frame.get("cars", [])):
                break
        while True:
            frame = b.receive_json()
            frames_b.append(frame)
            if frame["type"] == "cars" and frame["cars"][0].get("lat") == 43.03:
                break
    finally:
        ws_a.__exit__(None, None, None)
        ws_b.__exit__(None, None, None)
    assert ben.vin not in json.dumps(frames_a)
    assert ana.vin not in json.dumps(frames_b)
    update = frames_a[-1]["cars"][0]
    assert (update["lat"], update["lon"], update["heading"], update["speed"]) == (42.1, -83.1, 90.0, 30.0)
    assert wait_until(lambda: hub.subscribers == 0, timeout=5)  # a closed connection unsubscribes


def test_snapshot_carries_the_last_known_position_from_storage(client, app, engine, ana):
    from sqlalchemy import insert

    from chelian.storage.tables import latest_state
    from chelian.web.push import LAT, LON
    with engine.begin() as conn:
        conn.execute(insert(latest_state), [
            dict(vehicle_id=ana.vehicle_id, path=LAT, ts_ms=5, received_ms=6, value_num=42.5),
            dict(vehicle_id=ana.vehicle_id, path=LON, ts_ms=7, received_ms=8, value_num=-83.5)])
    ws, a = connect(client, ana.token)
    try:
        a.receive_json()
        car = a.receive_json()["cars"][0]
    finally:
        ws.__exit__(None, None, None)
    assert (car["vin"], car["lat"], car["lon"], car["ts_ms"]) == (ana.vin, 42.5, -83.5, 7)
    assert car["online"] is False
    assert car["name"] == "2019 Ford Focus"


@pytest.mark.parametrize("first", ['{"token": "not-a-token"}', "hello", '{"nothing": 1}', '["x"]'])
def test_a_bad_first_message_is_refused_with_4401(client, ana, first):
    with client.websocket_connect("/api/v1/live") as ws:
        ws.send_text(first)
        assert ws.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == CLOSE_UNAUTHORISED


def test_a_burst_of_updates_reaches_the_browser_in_a_frame_per_flush_interval(client, app, ana):
    ws, a = connect(client, ana.token)
    try:
        assert [a.receive_json()["type"], a.receive_json()["type"]] == ["hello", "snapshot"]
        hub = hub_for(app)
        started = time.monotonic()
        for seq in range(1, 51):  # 50 messages, normally well inside one 300 ms flush interval
            hub.on_committed(committed([position(ana.vehicle_id, seq, 42.0 + seq / 1000, -83.0)]))
        intervals = (time.monotonic() - started) / FLUSH_INTERVAL_S
        frames = []
        while not frames or frames[-1]["cars"][0]["lat"] != 42.05:
            frames.append(a.receive_json())
    finally:
        ws.__exit__(None, None, None)
    assert len(frames) <= 2 + intervals  # a frame per flush interval, never one per message
    assert all(len(f["cars"]) == 1 for f in frames)
