"""The simulated fleet on the wire (a local Mosquitto), its sequence numbers, its provisioning."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import defaultdict

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.link.codec import decode_event, decode_status, decode_telemetry
from chelian.security.hashing import verify_car_secret
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.provisioning import provision
from chelian.services.fleet.sim_fleet import provision_fleet, vehicles_of
from chelian.signals import Catalog
from chelian.sim.fleet import Fleet, SimCarConfig
from chelian.sim.models import sim_vin
from chelian.storage.repositories import vehicles

HOST, PORT = "127.0.0.1", 1883
CATALOG = Catalog.builtin()


@pytest.fixture(scope="module")
def broker() -> tuple[str, int]:
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker on {HOST}:{PORT}: {exc}")
    return HOST, PORT


class Recorder:
    """Subscribes to every channel of some VINs and keeps what arrives, per topic."""

    def __init__(self, vins: list[str]) -> None:
        self.vins = vins
        self.messages: dict[str, list[mqtt.MQTTMessage]] = defaultdict(list)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-rec-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe([(f"v1/vehicles/{v}/#", 1) for v in vins])
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages[msg.topic].append(msg)

    def __enter__(self) -> Recorder:
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        assert self._ready.wait(5), "recorder could not subscribe"
        return self

    def __exit__(self, *_exc: object) -> None:
        for vin in self.vins:  # leave no retained status behind on a shared broker
            self.client.publish(f"v1/vehicles/{vin}/status", b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def payloads(self, vin: str, channel: str) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages[f"v1/vehicles/{vin}/{channel}"]]

    def wait_for(self, predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, "timed out waiting for messages"
            time.sleep(0.05)


def fresh_cars(n: int) -> list[SimCarConfig]:
    """Cars with VINs no other test run uses (client id = VIN, and the broker is shared)."""
    owner = f"{uuid.uuid4().hex}@fleet-test.example"
    return [SimCarConfig(v, v, "not-checked-by-this-broker") for v in (sim_vin(owner, i) for i in range(n))]


def test_two_cars_announce_themselves_and_stream_telemetry(broker):
    cars = fresh_cars(2)
    vins = [c.vin for c in cars]
    with Recorder(vins) as rec:
        fleet = Fleet(cars, *broker, rate_hz=20)
        for vin in vins:  # set off at once: a parked car has little to say (deadband, heartbeat)
            car = fleet.vehicle(vin)
            car.phase, car.phase_left_s = "starting", 0.0
        fleet.start()
        try:
            assert fleet.wait_connected(10)
            rec.wait_for(lambda: all(len(rec.payloads(v, "telemetry")) >= 15 for v in vins))
        finally:
            fleet.stop()
        rec.wait_for(lambda: all(len(rec.payloads(v, "status")) >= 2 for v in vins))
        before_s = time.time()
        for vin in vins:
            online, offline = (decode_status(vin, p) for p in rec.payloads(vin, "status")[:2])
            assert online.online and not offline.online and offline.ts_ms >= online.ts_ms
            raw = rec.payloads(vin, "telemetry")
            assert all(set(json.loads(p)) == {"seq", "ts", "signals"} for p in raw)
            messages = [decode_telemetry(vin, p) for p in raw]  # the cloud's own decoder accepts them
            # Numbers are unique and dense; the snapshot taken on connect overtakes what was queued.
            assert sorted(m.seq for m in messages) == list(range(1, len(messages) + 1))
            assert all(abs(m.ts_ms / 1000 - before_s) < 60 for m in messages)
            by_seq = sorted(messages, key=lambda m: m.seq)
            assert all(b.ts_ms >= a.ts_ms for a, b in zip(by_seq, by_seq[1:], strict=False))
            assert len(messages[0].signals) >= 30  # the first message is a full snapshot
            for m in messages:
                for path, value in m.signals.items():
                    CATALOG.check(path, value)


def test_a_lost_link_triggers_the_last_will_and_the_car_comes_back(broker):
    cars = fresh_cars(1)
    vin = cars[0].vin
    with Recorder([vin]) as rec:
        fleet = Fleet(cars, *broker, rate_hz=5).start()
        try:
            assert fleet.wait_connected(10)
            rec.wait_for(lambda: len(rec.payloads(vin, "status")) >= 1)
            fleet.drop_connection(vin)
            rec.wait_for(lambda: len(rec.payloads(vin, "status")) >= 3)
        finally:
            fleet.stop()
        rec.wait_for(lambda: len(rec.payloads(vin, "status")) >= 4)
        states = [json.loads(p) for p in rec.payloads(vin, "status")[:4]]
        assert states[0]["state"] == "online"
        assert states[1] == {"state": "offline"}  # the will, sent by the broker on the car's behalf
        assert states[2]["state"] == "online"
        assert states[3]["state"] == "offline" and states[3]["ts"] >= states[2]["ts"]  # a clean goodbye

        # The status is retained: someone subscribing later learns the car's last state at once.
        with Recorder([vin]) as late:
            late.wait_for(lambda: len(late.payloads(vin, "status")) >= 1)
            retained = late.messages[f"v1/vehicles/{vin}/status"][0]
            assert retained.retain and json.loads(retained.payload)["state"] == "offline"


def test_mqtt5_cars_and_events_channel(broker):
    cars = fresh_cars(1)
    vin = cars[0].vin
    with Recorder([vin]) as rec:
        fleet = Fleet(cars, *broker, rate_hz=10, mqtt_version=5)
        # Make something happen at once: the car sets off on its first tick.
        car = fleet.vehicle(vin)
        car.phase, car.phase_left_s = "starting", 0.0
        fleet.start()
        try:
            assert fleet.wait_connected(10)
            rec.wait_for(lambda: len(rec.payloads(vin, "events")) >= 1)
        finally:
            fleet.stop()
        event = decode_event(vin, rec.payloads(vin, "events")[0])
        assert event.seq == 1 and event.type == "trip_started" and "odometer_m" in event.data


def test_sequence_numbers_continue_across_restarts_and_from_the_old_seq_json(tmp_path):
    seq_path = tmp_path / "sim" / "seq.json"
    seq_path.parent.mkdir()
    car = fresh_cars(1)[0]
    seq_path.write_text(json.dumps({f"{car.vin}/telemetry": 4000}))  # an older simulator's reservation
    fleet = Fleet([car], HOST, PORT, seq_path=seq_path)
    outbox = fleet.agent(car.vin).outbox
    assert outbox.next_seq("telemetry") == 4001
    assert outbox.next_seq("events") == 1
    fleet.stop()
    again = Fleet([car], HOST, PORT, seq_path=seq_path)
    assert again.agent(car.vin).outbox.next_seq("telemetry") > 4001
    again.stop()


def test_fleet_rejects_nonsense_settings():
    with pytest.raises(ValueError, match="rate_hz"):
        Fleet(fresh_cars(1), HOST, PORT, rate_hz=0)
    with pytest.raises(ValueError, match="mqtt_version"):
        Fleet(fresh_cars(1), HOST, PORT, mqtt_version=3)


def test_provision_fleet_registers_once_and_reissues_secrets(engine):
    owner = sign_up(engine, "sim@example.com", "password1")
    first = provision_fleet(engine, "SIM@example.com", 3, "mqtt://h:1")
    assert [c.vin for c in first] == [sim_vin("sim@example.com", i) for i in range(3)]
    assert all(c.mqtt_username == c.vin and c.mqtt_url == "mqtt://h:1" for c in first)

    again = provision_fleet(engine, "sim@example.com", 4, "mqtt://h:1")
    assert [c.vin for c in again[:3]] == [c.vin for c in first]
    assert len(vehicles_of(engine, "sim@example.com")) == 4
    with engine.connect() as conn:
        for old, new in zip(first, again, strict=False):
            stored = vehicles.credential(conn, new.vin)
            assert stored is not None and stored.vehicle_id
            assert verify_car_secret(new.mqtt_password, stored.secret_hash)
            assert not verify_car_secret(old.mqtt_password, stored.secret_hash)
    assert {v.owner_id for v in vehicles_of(engine, "sim@example.com")} == {owner.id}


def test_provision_fleet_refuses_what_it_cannot_do(engine):
    with pytest.raises(NotFoundError, match="chelian user add"):
        provision_fleet(engine, "nobody@example.com", 1, "mqtt://h:1")
    sign_up(engine, "a@example.com", "password1")
    other = sign_up(engine, "b@example.com", "password1")
    with pytest.raises(ValidationError):
        provision_fleet(engine, "a@example.com", 0, "mqtt://h:1")
    provision(engine, vin=sim_vin("a@example.com", 0), make="Ford", model="Focus", year=2016,
              owner_id=other.id, mqtt_url="x")
    with pytest.raises(ConflictError, match="another owner"):
        provision_fleet(engine, "a@example.com", 1, "mqtt://h:1")
