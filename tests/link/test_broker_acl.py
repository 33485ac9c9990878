"""Who may connect and which topics each identity may use - on both brokers chelian runs.

Every test runs against the embedded amqtt broker (SQLite) and a private Mosquitto with the
generated config (PostgreSQL). Negative checks ("B never sees it") use a barrier: a message
the same client is allowed to send *after* the forbidden one; once the barrier arrives, the
forbidden one would have arrived before it.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from chelian.link.codec import encode_telemetry
from chelian.link.topics import STATUS, all_vehicles, shared, telemetry_topic, vehicle_topic
from chelian.metrics import Metrics
from chelian.runtime import build_ingest
from chelian.services.fleet.provisioning import rotate_secret
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from chelian.storage.tables import telemetry
from tests.fixtures_brokers import BrokerStack, wait_until

VIN_A = "1M8GDM9AXKP042788"
VIN_B = "WVWZZZ1JZ3W386752"
VIN_C = "VF1RFB00X56123456"
SETTLE_S = 0.3  # after a barrier arrived: time for an out-of-order forbidden message to show up


def _refused(probe) -> bool:  # type: ignore[no-untyped-def]
    return probe.reason_code is not None and probe.reason_code.is_failure


def test_car_publishes_its_telemetry_to_the_service_account(broker_stack: BrokerStack) -> None:
    car = broker_stack.add_car(VIN_A)
    ingest = broker_stack.service_client()
    assert ingest.subscribe(all_vehicles("telemetry")) == 1
    client = broker_stack.car_client(car)
    assert client.connected, client.reason_code
    assert client.publish(telemetry_topic(VIN_A), b'{"seq": 1}')
    msg = ingest.expect(timeout=5)
    assert msg is not None and (msg.topic, msg.payload) == (telemetry_topic(VIN_A), b'{"seq": 1}')


def test_wrong_or_missing_credentials_are_refused(broker_stack: BrokerStack) -> None:
    car = broker_stack.add_car(VIN_A)
    assert _refused(broker_stack.client(car.mqtt_username, car.mqtt_password + "x"))
    assert _refused(broker_stack.client(VIN_B, car.mqtt_password))  # no such car
    assert _refused(broker_stack.client(broker_stack.service.username, car.mqtt_password))
    assert _refused(broker_stack.client(None, None))  # anonymous
    assert not _refused(broker_stack.car_client(car))


def test_car_cannot_publish_under_another_vin_or_channel(broker_stack: BrokerStack) -> None:
    car_a = broker_stack.add_car(VIN_A)
    broker_stack.add_car(VIN_B)
    ingest = broker_stack.service_client()
    assert ingest.subscribe("v1/vehicles/#") == 1
    a = broker_stack.car_client(car_a)
    forbidden = [telemetry_topic(VIN_B), vehicle_topic(VIN_B, STATUS), vehicle_topic(VIN_A, "commands"),
                 f"v1/vehicles/{VIN_A}/telemetry/extra", "v1/other"]
    for topic in forbidden:
        a.publish(topic, b"forged")
    assert a.publish(telemetry_topic(VIN_A), b"barrier")
    assert ingest.expect(telemetry_topic(VIN_A), timeout=5) is not None
    time.sleep(SETTLE_S)
    leaked = [m.topic for m in ingest.drain() if m.payload == b"forged"]
    assert leaked == []


def test_car_receives_only_its_own_commands(broker_stack: BrokerStack) -> None:
    car_a, car_b = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_B)
    a, b = broker_stack.car_client(car_a), broker_stack.car_client(car_b)
    own = vehicle_topic(VIN_A, "commands")
    assert a.subscribe(own) == 1
    assert b.subscribe(vehicle_topic(VIN_B, "commands")) == 1
    for topic_filter in (vehicle_topic(VIN_B, "commands"), "v1/vehicles/#", "v1/vehicles/+/commands", "#",
                         all_vehicles("telemetry")):
        granted = a.subscribe(topic_filter)
        if broker_stack.kind == "embedded":
            assert granted == 0x80, topic_filter  # refused in SUBACK
        # Mosquitto 2.0 grants any filter and applies the ACL to each message it would deliver.
    service = broker_stack.service_client()
    service.publish(vehicle_topic(VIN_B, "commands"), b"for-b")
    service.publish(telemetry_topic(VIN_B), b"b-telemetry")
    service.publish(own, b"barrier")
    assert b.expect(timeout=5).payload == b"for-b"  # positive control: B gets its own command
    assert a.expect(timeout=5).payload == b"barrier"
    time.sleep(SETTLE_S)
    assert [m.payload for m in a.drain()] == []


def test_rotated_credentials_are_refused_and_the_old_connection_is_cut(broker_stack: BrokerStack) -> None:
    old = broker_stack.add_car(VIN_A)
    live = broker_stack.car_client(old)
    assert live.connected
    new = rotate_secret(broker_stack.engine, VIN_A, broker_stack.settings.car_mqtt_url)
    broker_stack.sync()
    # The embedded broker remembers a verified login for its cache TTL (1 s in tests).
    assert wait_until(lambda: _refused(broker_stack.client(old.mqtt_username, old.mqtt_password)), timeout=5)
    assert live.wait_disconnected(timeout=5), "a connection with revoked credentials must be cut"
    assert not _refused(broker_stack.car_client(new))


def test_service_account_sees_every_cars_telemetry(broker_stack: BrokerStack) -> None:
    cars = [broker_stack.add_car(vin, sync=False) for vin in (VIN_A, VIN_B, VIN_C)]
    broker_stack.sync()
    ingest = broker_stack.service_client()
    assert ingest.subscribe(all_vehicles("telemetry")) == 1
    for car in cars:
        assert broker_stack.car_client(car).publish(telemetry_topic(car.vin), car.vin.encode())
    got = {ingest.expect(timeout=5).payload for _ in cars}
    assert got == {car.vin.encode() for car in cars}


def test_shared_subscription_splits_the_stream_between_service_clients(broker_stack: BrokerStack) -> None:
    car = broker_stack.add_car(VIN_A)
    group = shared(all_vehicles("telemetry"), "chelian-ingest")
    workers = [broker_stack.service_client(mqtt5=broker_stack.mqtt5) for _ in range(2)]
    for worker in workers:
        assert worker.subscribe(group) == 1
    client = broker_stack.car_client(car)
    sent = [str(i).encode() for i in range(20)]
    for payload in sent:
        assert client.publish(telemetry_topic(VIN_A), payload)
    assert wait_until(lambda: sum(w.messages.qsize() for w in workers) >= len(sent), timeout=5)
    time.sleep(SETTLE_S)  # nothing may arrive twice
    received = [[m.payload for m in w.drain()] for w in workers]
    assert sorted(received[0] + received[1]) == sorted(sent)
    assert received[0] and received[1], "both members of the group get a share"


def test_persistent_service_session_gets_messages_sent_while_it_was_away(broker_stack: BrokerStack) -> None:
    car = broker_stack.add_car(VIN_A)
    kwargs = {"client_id": "chelian-ingest-0", "clean_session": False, "mqtt5": broker_stack.mqtt5}
    ingest = broker_stack.service_client(**kwargs)
    assert ingest.subscribe(all_vehicles("telemetry")) == 1
    ingest.close()
    client = broker_stack.car_client(car)
    sent = [f"m{i}".encode() for i in range(5)]
    for payload in sent:
        assert client.publish(telemetry_topic(VIN_A), payload)
    back = broker_stack.service_client(**kwargs)
    got = [back.expect(timeout=5) for _ in sent]
    assert [m.payload for m in got if m is not None] == sent
    assert not any(m.retain for m in got)  # queued, not retained, messages


def test_unacknowledged_message_is_redelivered_after_reconnect(broker_stack: BrokerStack) -> None:
    """The ingest acks only after commit: a worker that dies before that must get it again."""
    car = broker_stack.add_car(VIN_A)
    kwargs = {"client_id": "chelian-ingest-0", "clean_session": False, "mqtt5": broker_stack.mqtt5}
    ingest = broker_stack.service_client(manual_ack=True, **kwargs)
    assert ingest.subscribe(all_vehicles("telemetry")) == 1
    assert broker_stack.car_client(car).publish(telemetry_topic(VIN_A), b"unacked")
    first = ingest.expect(timeout=5)
    assert first is not None and first.payload == b"unacked"
    ingest.drop()  # never acked
    back = broker_stack.service_client(**kwargs)
    again = back.expect(timeout=10)
    assert again is not None and again.payload == b"unacked"


def test_a_car_does_not_get_other_cars_retained_status(broker_stack: BrokerStack) -> None:
    car_a, car_b = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_B)
    watcher = broker_stack.service_client()
    assert watcher.subscribe(all_vehicles(STATUS)) == 1  # a subscription that matches A's status
    assert broker_stack.car_client(car_a).publish(vehicle_topic(VIN_A, STATUS), b"online", retain=True)
    assert watcher.expect(timeout=5) is not None
    b = broker_stack.car_client(car_b)
    assert b.subscribe(vehicle_topic(VIN_B, "commands")) == 1
    idle = broker_stack.service_client()  # allowed to read it, but has not subscribed
    time.sleep(SETTLE_S)
    assert b.drain() == [] and idle.drain() == []
    late = broker_stack.service_client()
    assert late.subscribe(all_vehicles(STATUS)) == 1
    retained = late.expect(timeout=5)
    assert retained is not None and retained.retain and retained.payload == b"online"


def test_last_will_only_on_the_cars_own_topics(broker_stack: BrokerStack) -> None:
    car_a, car_c = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_C)
    watcher = broker_stack.service_client()
    assert watcher.subscribe(all_vehicles(STATUS)) == 1
    forger = broker_stack.car_client(car_a, will=(vehicle_topic(VIN_B, STATUS), b"forged", 1, False))
    if broker_stack.kind == "embedded":
        assert _refused(forger)  # the embedded broker checks the will topic at CONNECT
    honest = broker_stack.car_client(car_c, will=(vehicle_topic(VIN_C, STATUS), b"offline", 1, False))
    assert honest.connected
    forger.drop()
    honest.drop()
    assert watcher.expect(vehicle_topic(VIN_C, STATUS), timeout=5) is not None
    time.sleep(SETTLE_S)
    assert [m.payload for m in watcher.drain() if m.payload == b"forged"] == []


def test_silent_car_is_cut_after_its_keepalive_and_its_will_published(broker_stack: BrokerStack) -> None:
    car = broker_stack.add_car(VIN_A)
    watcher = broker_stack.service_client()
    assert watcher.subscribe(all_vehicles(STATUS)) == 1
    will = (vehicle_topic(VIN_A, STATUS), b"offline", 1, False)
    client = broker_stack.car_client(car, keepalive=1, will=will)
    assert client.connected
    client.freeze()  # no PINGREQ, no FIN: a car in a tunnel
    msg = watcher.expect(vehicle_topic(VIN_A, STATUS), timeout=10)  # Mosquitto takes ~5 s
    assert msg is not None and msg.payload == b"offline"


def test_payload_over_the_app_limit_is_relayed_but_a_huge_packet_cuts_the_sender(
        broker_stack: BrokerStack) -> None:
    """The ingest dead-letters oversized payloads, so they must reach it; megabytes must not."""
    car = broker_stack.add_car(VIN_A)
    ingest = broker_stack.service_client()
    assert ingest.subscribe(all_vehicles("telemetry")) == 1
    client = broker_stack.car_client(car)
    big = b"x" * (broker_stack.settings.max_payload_bytes + 1)
    assert client.publish(telemetry_topic(VIN_A), big)
    msg = ingest.expect(timeout=5)
    assert msg is not None and msg.payload == big
    client.publish(telemetry_topic(VIN_A), b"y" * (4 * 1024 * 1024), qos=0)
    assert client.wait_disconnected(timeout=5)
    assert ingest.expect(timeout=SETTLE_S) is None


def _still_connected(probe, settle_s: float = SETTLE_S) -> bool:  # type: ignore[no-untyped-def]
    return not probe.wait_disconnected(timeout=settle_s) and probe.connected


@pytest.mark.parametrize("victim_id", ["chelian-ingest-0", "chelian-commands-0"])
def test_a_car_using_a_platform_client_id_does_not_disturb_the_platform_session(
        broker_stack: BrokerStack, victim_id: str) -> None:
    """The embedded broker refuses the car; Mosquitto names its session by its VIN instead."""
    car_a, car_b = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_B)
    victim = broker_stack.service_client(client_id=victim_id, clean_session=False)
    assert victim.subscribe(all_vehicles("telemetry")) == 1
    intruder = broker_stack.car_client(car_b, client_id=victim_id)
    if broker_stack.kind == "embedded":
        assert _refused(intruder)
    else:
        assert _still_connected(intruder), "the car itself may stay: its session is its VIN"
    assert broker_stack.car_client(car_a).publish(telemetry_topic(VIN_A), b"during")
    msg = victim.expect(timeout=5)
    assert msg is not None and msg.payload == b"during"
    assert _still_connected(victim)
    assert victim.drain() == [], "delivered once"


def test_a_car_cannot_claim_a_platform_client_id_before_the_platform_connects(
        broker_stack: BrokerStack) -> None:
    car_a, car_b = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_B)
    squatter = broker_stack.car_client(car_b, client_id="chelian-ingest-0", clean_session=False)
    if broker_stack.kind == "embedded":
        assert _refused(squatter)
    else:
        assert squatter.connected  # as VIN_B
        squatter.close()  # leaves a persistent session behind: VIN_B's, not the worker's
    worker = broker_stack.service_client(client_id="chelian-ingest-0", clean_session=False)
    assert worker.connected
    assert worker.subscribe(all_vehicles("telemetry")) == 1
    worker.close()
    assert broker_stack.car_client(car_a).publish(telemetry_topic(VIN_A), b"while-away")
    back = broker_stack.service_client(client_id="chelian-ingest-0", clean_session=False)
    msg = back.expect(timeout=5)
    assert msg is not None and msg.payload == b"while-away"


def test_ingest_worker_keeps_storing_while_a_car_claims_its_client_id(broker_stack: BrokerStack) -> None:
    def stored() -> list[int]:
        with broker_stack.engine.connect() as conn:
            return list(conn.execute(select(telemetry.c.seq).order_by(telemetry.c.seq)).scalars())

    car_a, car_b = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_B)
    worker = build_ingest(broker_stack.settings, broker_stack.engine, Catalog.builtin(), Metrics(),
                          client_id="chelian-ingest-0").start()
    try:
        sender = broker_stack.car_client(car_a)
        signals = {"Vehicle.Speed": 42.0}
        assert sender.publish(telemetry_topic(VIN_A), encode_telemetry(1, now_ms(), signals))
        assert wait_until(lambda: stored() == [1], timeout=10)
        intruder = broker_stack.car_client(car_b, client_id="chelian-ingest-0")
        for seq in range(2, 6):  # published while the intruder is (or tried to be) connected
            assert sender.publish(telemetry_topic(VIN_A), encode_telemetry(seq, now_ms(), signals))
        assert wait_until(lambda: stored() == [1, 2, 3, 4, 5], timeout=10), stored()
        if broker_stack.kind == "mosquitto":
            assert _still_connected(intruder)  # no take-over war with the worker's reconnects
    finally:
        worker.stop()
    assert stored() == [1, 2, 3, 4, 5]


def test_a_car_using_another_cars_vin_as_client_id_does_not_kick_it(broker_stack: BrokerStack) -> None:
    car_a, car_b = broker_stack.add_car(VIN_A), broker_stack.add_car(VIN_B)
    b = broker_stack.car_client(car_b)
    assert b.subscribe(vehicle_topic(VIN_B, "commands")) == 1
    a = broker_stack.car_client(car_a, client_id=VIN_B)
    if broker_stack.kind == "embedded":
        assert _refused(a)
    else:
        assert _still_connected(a)  # Mosquitto: connected, as VIN_A
    assert _still_connected(b)
    assert broker_stack.service_client().publish(vehicle_topic(VIN_B, "commands"), b"for-b")
    msg = b.expect(timeout=5)
    assert msg is not None and msg.payload == b"for-b"


def test_cars_and_the_platform_each_have_their_own_mosquitto_listener(mosquitto_stack: BrokerStack) -> None:
    car = mosquitto_stack.add_car(VIN_A)
    assert mosquitto_stack.platform_port != mosquitto_stack.port
    on_platform = mosquitto_stack.client(car.mqtt_username, car.mqtt_password, client_id=VIN_A,
                                         port=mosquitto_stack.platform_port)
    assert _refused(on_platform), "a car cannot log in on the platform listener"
    service = mosquitto_stack.service
    assert _refused(mosquitto_stack.client(service.username, service.password))  # car listener
    assert not _refused(mosquitto_stack.service_client())
    assert not _refused(mosquitto_stack.car_client(car))
