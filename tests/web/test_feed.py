"""The live feed across processes, on real PostgreSQL: an ingest elsewhere NOTIFYs, the hub here
routes what arrives to the subscriptions of whoever may see each car."""

from __future__ import annotations

import itertools
import os

import pytest

from chelian.config import Settings
from chelian.ingest.batch import Inbound
from chelian.ingest.processor import Processor
from chelian.link import topics
from chelian.link.codec import encode_event, encode_telemetry
from chelian.metrics import Metrics
from chelian.signals import Catalog
from chelian.storage.db import make_engine, now_ms
from chelian.web.feed import MAX_PAYLOAD_BYTES, LiveListener, LivePublisher, live_publisher, parse, payloads
from chelian.web.push import LAT, LON, PushHub
from tests.factories import make_car, make_owner, new_vin, signals
from tests.fixtures_brokers import start_ingest_process, stop_process, wait_until
from tests.web.conftest import committed, position

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def other_ingest(database_url, tmp_path):
    """A second ingest on the same database, with its own pool: another process's, in effect."""
    engine = make_engine(database_url)
    settings = Settings.load(data_dir=tmp_path)
    processor = Processor.from_settings(settings, engine, Catalog.builtin(), Metrics())
    publisher = LivePublisher(engine)
    processor.observers.append(publisher)
    yield processor, publisher
    publisher.close()
    engine.dispose()


@pytest.fixture
def listening_hub(engine):
    hub = PushHub(engine)
    with LiveListener(engine, hub, poll_s=0.2) as listener:
        assert listener.listening.is_set()
        yield hub, listener


def telemetry(vin: str, seq: int, lat: float, lon: float) -> Inbound:
    body = {**signals(seq), LAT: lat, LON: lon}
    return Inbound(seq, 1, topics.telemetry_topic(vin), encode_telemetry(seq, now_ms(), body), now_ms())


@POSTGRESQL
def test_a_position_ingested_elsewhere_reaches_only_its_owners_subscription(listening_hub, other_ingest,
                                                                            ana, ben):
    hub, _ = listening_hub
    processor, publisher = other_ingest
    sub_a, sub_b = hub.subscribe(ana.user_id), hub.subscribe(ben.user_id)
    crash = encode_event(2, now_ms(), "crash_detected", {})
    processor.process([telemetry(ana.vin, 1, 42.5, 1.52),
                       Inbound(2, 1, topics.vehicle_topic(ana.vin, topics.EVENTS), crash, now_ms())])
    assert publisher.sent == 1
    got: dict = {}
    assert wait_until(lambda: got.update(sub_a.take()) or ana.vin in got, timeout=10)
    update = got[ana.vin]
    assert (update["vin"], update["lat"], update["lon"], update["online"]) == (ana.vin, 42.5, 1.52, True)
    assert update["alert"]["type"] == "crash_detected"
    assert sub_b.take() == {}  # ben may not see ana's car, from any process


@POSTGRESQL
def test_a_batch_of_many_cars_is_announced_in_chunks_and_arrives_whole(engine, listening_hub, other_ingest):
    hub, listener = listening_hub
    processor, publisher = other_ingest
    owner = make_owner(engine)
    cars = [make_car(engine, owner).vin for _ in range(150)]
    sub = hub.subscribe(owner.id)
    processor.process([telemetry(vin, i + 1, 40 + i / 1000, 2 + i / 1000) for i, vin in enumerate(cars)])
    assert publisher.sent > 1  # 150 cars do not fit one NOTIFY
    got: dict = {}
    assert wait_until(lambda: got.update(sub.take()) or len(got) == len(cars), timeout=10)
    assert listener.received == publisher.sent
    assert {vin: got[vin]["lat"] for vin in cars} == {vin: 40 + i / 1000 for i, vin in enumerate(cars)}


def test_payloads_stay_under_the_notify_limit_and_carry_every_car_once():
    updates = {vid: {"lat": 42.123456789, "lon": -83.123456789, "heading": 271.5, "speed": 88.25,
                     "ts_ms": 1_700_000_000_000 + vid, "online": True} for vid in range(1, 1001)}
    chunks = payloads(updates)
    assert len(chunks) > 1 and all(len(c.encode()) <= MAX_PAYLOAD_BYTES for c in chunks)
    decoded = [parse(c) for c in chunks]
    assert sum(len(d) for d in decoded) == len(updates)
    assert {k: v for d in decoded for k, v in d.items()} == updates
    assert payloads({}) == []
    assert parse("not json") == {} and parse("[1, 2]") == {}


def test_sqlite_has_no_publisher_and_the_hub_stays_an_ingest_observer(engine, ana):
    if engine.dialect.name != "sqlite":
        assert isinstance(live_publisher(engine), LivePublisher)
        return
    assert live_publisher(engine) is None
    hub = PushHub(engine)
    sub = hub.subscribe(ana.user_id)
    hub.on_committed(committed([position(ana.vehicle_id, 1, 42.0, -83.0)]))
    assert sub.take()[ana.vin]["lat"] == 42.0


@pytest.mark.production
def test_a_chelian_ingest_worker_feeds_the_hub_of_this_process(mosquitto_stack, tmp_path):
    stack = mosquitto_stack
    creds = stack.add_car(new_vin())
    owner = stack._owner_id
    hub = PushHub(stack.engine)
    sub = hub.subscribe(owner)
    log = tmp_path / "ingest.log"
    worker = start_ingest_process(stack, f"feed-{os.getpid()}", log)
    car = stack.car_client(creds)
    got: dict = {}
    seqs = itertools.count(1)

    def arrived() -> bool:  # published until one arrives: the worker subscribes when it is up
        car.publish(topics.telemetry_topic(creds.vin), encode_telemetry(next(seqs), now_ms(), signals(1)))
        got.update(sub.take())
        return creds.vin in got

    try:
        with LiveListener(stack.engine, hub, poll_s=0.2):
            assert wait_until(arrived, timeout=30, interval=0.3), log.read_text()
        assert got[creds.vin]["lat"] == signals(1)[LAT]
    finally:
        stop_process(worker)
