"""Ingest without a broker: raw messages in, rows committed, rejections dead-lettered."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from chelian.config import Settings
from chelian.errors import ConfigError
from chelian.ingest.batch import Inbound
from chelian.ingest.directory import VehicleDirectory
from chelian.ingest.pipeline import Limits, Pipeline
from chelian.ingest.processor import Processor
from chelian.ingest.ratelimit import RateLimiter, RejectionSampler
from chelian.ingest.writers import writer_for
from chelian.link import topics
from chelian.link.codec import encode_event, encode_status, encode_telemetry
from chelian.metrics import Metrics
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from chelian.storage.tables import events, latest_state, rejected_messages, telemetry, vehicles
from tests.factories import make_car, make_owner, signals
from tests.ingest.vss_export import EXTENSION_SIGNAL, write_vss_export


@pytest.fixture
def processor(engine, tmp_path):
    settings = Settings.load(data_dir=tmp_path, max_messages_per_s=5, max_message_burst=20)
    return Processor.from_settings(settings, engine, Catalog.builtin(), Metrics())


def inbound(topic: str, payload: bytes, mid: int = 1, received_ms: int | None = None) -> Inbound:
    return Inbound(mid, 1, topic, payload, received_ms or now_ms())


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def stored_signals(engine) -> int:
    """Signal samples stored, summed over telemetry rows (one row per message)."""
    with engine.connect() as conn:
        return sum(len(body) for body in conn.execute(select(telemetry.c.signals)).scalars())


def rejected_reasons(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(rejected_messages.c.reason)).scalars())


def test_telemetry_is_stored_once_and_latest_state_moves_forward_only(engine, processor):
    car = make_car(engine, make_owner(engine))
    t = topics.telemetry_topic(car.vin)
    base = now_ms() - 10_000
    first = [inbound(t, encode_telemetry(i, base + i * 1000, signals(i)), mid=i) for i in range(5)]
    result = processor.process(first)
    assert (result.messages_stored, result.signals_stored) == (5, 125)
    # redelivery of the same five plus one older message arriving late
    late = inbound(t, encode_telemetry(99, base - 60_000, {"Vehicle.Speed": 5.0}))
    result = processor.process([*first, late])
    assert (result.messages_stored, result.duplicates) == (1, 5)
    assert count(engine, telemetry) == 6 and stored_signals(engine) == 126
    with engine.connect() as conn:
        speed = conn.execute(select(latest_state.c.value_num, latest_state.c.ts_ms)
                             .where(latest_state.c.path == "Vehicle.Speed")).one()
    assert speed == (30.0 + 4, base + 4000)  # the late, older sample did not overwrite it
    assert processor.metrics.duplicates._value.get() == 5


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "invalid_envelope"),
        (json.dumps({"seq": -1, "ts": 1, "signals": {"Vehicle.Speed": 1.0}}).encode(), "invalid_envelope"),
        (json.dumps({"seq": 1, "ts": 1, "signals": {}}).encode(), "invalid_envelope"),
        (encode_telemetry(1, 1, {"Vehicle.Warp": 9.0}), "unknown_signal"),
        (encode_telemetry(1, 1, {"Vehicle.Speed": "fast"}), "wrong_type"),
        (encode_telemetry(1, 1, {"Vehicle.Speed": 1200.0}), "out_of_range"),
        (encode_telemetry(1, now_ms() + 3_600_000, {"Vehicle.Speed": 1.0}), "clock_skew"),
    ],
)
def test_bad_messages_are_dead_lettered_and_neighbours_survive(engine, processor, payload, reason):
    car = make_car(engine, make_owner(engine))
    t = topics.telemetry_topic(car.vin)
    good_before = inbound(t, encode_telemetry(100, now_ms(), signals(0)))
    good_after = inbound(t, encode_telemetry(101, now_ms(), signals(1)))
    processor.process([good_before, inbound(t, payload), good_after])
    assert stored_signals(engine) == 50
    assert rejected_reasons(engine) == [reason]
    with engine.connect() as conn:
        stored = conn.execute(select(rejected_messages.c.payload, rejected_messages.c.vin)).one()
    assert bytes(stored.payload) == payload and stored.vin == car.vin
    assert processor.metrics.messages_rejected.labels(reason)._value.get() == 1


def test_good_signals_of_a_partly_bad_message_are_kept(engine, processor):
    car = make_car(engine, make_owner(engine))
    payload = encode_telemetry(1, now_ms(), {"Vehicle.Speed": 50.0, "Vehicle.Warp": 9.0})
    processor.process([inbound(topics.telemetry_topic(car.vin), payload)])
    assert stored_signals(engine) == 1
    assert rejected_reasons(engine) == ["unknown_signal"]


def test_unknown_vehicle_bad_topic_oversize_and_rate_limit(engine, processor):
    car = make_car(engine, make_owner(engine))
    t = topics.telemetry_topic(car.vin)
    msgs = [
        inbound(topics.telemetry_topic("1FTFW1ET0DZZZZZZZ"), encode_telemetry(1, 1, {"Vehicle.Speed": 1.0})),
        inbound("v1/vehicles/x/somewhere", b"{}"),
        inbound(t, b"x" * 20_000),
        *[inbound(t, encode_telemetry(i, now_ms(), {"Vehicle.Speed": 1.0}), mid=i) for i in range(25)],
    ]
    processor.process(msgs)
    reasons = rejected_reasons(engine)
    assert reasons.count("unknown_vehicle") == 1 and reasons.count("bad_topic") == 1
    assert reasons.count("payload_too_large") == 1
    # burst of 20 tokens: the oversized message took none, so 20 of the 25 pass; the 5 refused are
    # all counted, but only the first is dead-lettered (the flood sampler keeps one per interval)
    assert stored_signals(engine) == 20 and reasons.count("rate_limited") == 1
    assert processor.metrics.messages_rejected.labels("rate_limited")._value.get() == 5


def test_events_and_status(engine, processor):
    car = make_car(engine, make_owner(engine))
    ev = encode_event(1, now_ms(), "door_opened", {"door": "Row1.DriverSide"})
    processor.process([inbound(topics.vehicle_topic(car.vin, "events"), ev)] * 2)
    assert count(engine, events) == 1
    processor.process([inbound(topics.vehicle_topic(car.vin, "status"), encode_status(True, now_ms()))])
    assert count(engine, vehicles, vehicles.c.online.is_(True)) == 1
    processor.process([inbound(topics.vehicle_topic(car.vin, "status"), encode_status(False))])
    assert count(engine, vehicles, vehicles.c.online.is_(True)) == 0


def test_observers_see_only_new_rows_once(engine, processor):
    seen = []

    class Recorder:
        def on_committed(self, result):
            seen.append(([(m.seq, sorted(m.samples)) for m in result.new_telemetry],
                         [e.type for e in result.new_events]))

    processor.observers.append(Recorder())
    car = make_car(engine, make_owner(engine))
    msgs = [inbound(topics.telemetry_topic(car.vin), encode_telemetry(1, now_ms(), {"Vehicle.Speed": 3.0})),
            inbound(topics.vehicle_topic(car.vin, "events"), encode_event(1, now_ms(), "crash_reported"))]
    processor.process(msgs)
    processor.process(msgs)  # redelivery: nothing new, no call
    assert seen == [([(1, ["Vehicle.Speed"])], ["crash_reported"])]


@pytest.mark.parametrize("with_export", [False, True])
def test_a_signal_only_in_a_vss_export_is_stored_only_with_that_export(engine, tmp_path, with_export):
    vss_json = write_vss_export(tmp_path / "vss.json") if with_export else None
    settings = Settings.load(data_dir=tmp_path, vss_json=vss_json)
    processor = Processor.from_settings(settings, engine, Catalog.load(settings.vss_json), Metrics())
    car = make_car(engine, make_owner(engine))
    payload = encode_telemetry(1, now_ms(), {EXTENSION_SIGNAL: 88.5, "Vehicle.Speed": 87.0})
    result = processor.process([inbound(topics.telemetry_topic(car.vin), payload)])
    with engine.connect() as conn:
        latest = dict(conn.execute(select(latest_state.c.path, latest_state.c.value_num)).all())
    if with_export:
        assert result.signals_stored == 2 and rejected_reasons(engine) == []
        assert latest == {EXTENSION_SIGNAL: 88.5, "Vehicle.Speed": 87.0}
    else:
        assert result.signals_stored == 1 and rejected_reasons(engine) == ["unknown_signal"]
        assert latest == {"Vehicle.Speed": 87.0}
        assert processor.metrics.messages_rejected.labels("unknown_signal")._value.get() == 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def processor_with_clock(engine, clock: Clock, *, rate: float = 5.0, burst: int = 20,
                         interval_s: float = 60.0) -> Processor:
    pipeline = Pipeline(Catalog.builtin(), VehicleDirectory(engine), RateLimiter(rate, burst, clock=clock),
                        Limits(max_payload_bytes=16384), RejectionSampler(interval_s, clock=clock))
    return Processor(pipeline, writer_for(engine), Metrics())


def dead_letters(engine, reason: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(rejected_messages.c.detail)
                                 .where(rejected_messages.c.reason == reason)
                                 .order_by(rejected_messages.c.id)).scalars())


def test_a_flooding_car_is_counted_in_full_but_dead_lettered_and_logged_once_per_interval(engine, caplog):
    clock = Clock()
    processor = processor_with_clock(engine, clock)
    car = make_car(engine, make_owner(engine))
    t = topics.telemetry_topic(car.vin)
    big = {"Vehicle.Diagnostics.DTCList": ["P0301"] * 1500}  # about 13 KB: under the size limit
    flood = [inbound(t, encode_telemetry(i, now_ms(), big), mid=i) for i in range(1000)]
    oversized = [inbound(t, b"x" * 20_000, mid=2000 + i) for i in range(50)]
    with caplog.at_level("WARNING", logger="chelian.ingest"):
        for start in range(0, 1000, 200):  # several batches, as the worker would form them
            processor.process(flood[start:start + 200])
        processor.process(oversized)
    rejected = processor.metrics.messages_rejected
    assert rejected.labels("rate_limited")._value.get() == 980  # burst of 20 stored, every refusal counted
    assert rejected.labels("payload_too_large")._value.get() == 50
    assert count(engine, telemetry) == 20
    assert dead_letters(engine, "rate_limited") == ["per-car message rate exceeded"]
    assert dead_letters(engine, "payload_too_large") == ["20000 bytes > limit 16384"]
    assert len([r for r in caplog.records if r.getMessage().startswith("message_rejected")]) == 2

    clock.now += 61  # next window: 61 s of tokens (5/s) refill the burst of 20, then refusals again
    processor.process([inbound(t, encode_telemetry(5000 + i, now_ms(), {"Vehicle.Speed": 1.0}), mid=i)
                       for i in range(25)])
    assert count(engine, telemetry) == 40
    assert rejected.labels("rate_limited")._value.get() == 985
    assert dead_letters(engine, "rate_limited")[1] == (
        "per-car message rate exceeded (979 more rate_limited from this car since the previous one kept "
        "here: counted, not kept)")


def test_another_car_is_sampled_on_its_own(engine):
    processor = processor_with_clock(engine, Clock(), burst=1)
    owner = make_owner(engine)
    cars = [make_car(engine, owner), make_car(engine, owner)]
    processor.process([inbound(topics.telemetry_topic(c.vin),
                               encode_telemetry(i, now_ms(), {"Vehicle.Speed": 1.0}))
                       for c in cars for i in range(10)])
    with engine.connect() as conn:
        vins = sorted(conn.execute(select(rejected_messages.c.vin)).scalars())
    assert vins == sorted(c.vin for c in cars)
    assert processor.metrics.messages_rejected.labels("rate_limited")._value.get() == 18


def test_the_flood_sample_interval_is_a_setting(engine, tmp_path):
    settings = Settings.load(data_dir=tmp_path, flood_sample_interval_s=5)
    processor = Processor.from_settings(settings, engine, Catalog.builtin(), Metrics())
    assert processor.pipeline.sampler._interval == 5
    with pytest.raises(ConfigError, match="CHELIAN_FLOOD_SAMPLE_INTERVAL_S: Input should be greater than 0"):
        Settings.load(data_dir=tmp_path, flood_sample_interval_s=0)


def test_a_batch_retried_message_by_message_takes_no_rate_tokens_twice(engine):
    clock = Clock()
    processor = processor_with_clock(engine, clock, burst=20)
    car = make_car(engine, make_owner(engine))
    t = topics.telemetry_topic(car.vin)
    calls = []

    class RefusesTheFirstBatch:
        def __init__(self, inner):
            self.inner = inner

        def write(self, batch):
            calls.append(len(batch.telemetry))
            if len(calls) == 1:
                raise ValueError("poisoned batch")  # not transient: the processor retries one by one
            return self.inner.write(batch)

    processor.writer = RefusesTheFirstBatch(processor.writer)
    result = processor.process([inbound(t, encode_telemetry(i, now_ms(), {"Vehicle.Speed": 1.0}), mid=i)
                                for i in range(15)])
    assert calls == [15] + [1] * 15
    assert result.messages_stored == 15 and rejected_reasons(engine) == []
    # 15 of the 20 tokens were used once; 5 are left (the clock stands still, nothing refills)
    processor.process([inbound(t, encode_telemetry(100 + i, now_ms(), {"Vehicle.Speed": 1.0}), mid=i)
                       for i in range(6)])
    assert count(engine, telemetry) == 20
    assert processor.metrics.messages_rejected.labels("rate_limited")._value.get() == 1


def test_a_retried_batch_keeps_its_rate_verdicts(engine):
    """Messages refused for rate in the failed batch stay refused in the retry, and are counted once."""
    processor = processor_with_clock(engine, Clock(), burst=3)
    car = make_car(engine, make_owner(engine))
    t = topics.telemetry_topic(car.vin)
    failed = []

    class RefusesTheFirstBatch:
        def __init__(self, inner):
            self.inner = inner

        def write(self, batch):
            if not failed:
                failed.append(batch)
                raise ValueError("poisoned batch")
            return self.inner.write(batch)

    processor.writer = RefusesTheFirstBatch(processor.writer)
    processor.process([inbound(t, encode_telemetry(i, now_ms(), {"Vehicle.Speed": 1.0}), mid=i)
                       for i in range(8)])
    assert sorted(failed[0].refused) == [3, 4, 5, 6, 7]
    assert count(engine, telemetry) == 3 and rejected_reasons(engine) == ["rate_limited"]
    assert processor.metrics.messages_rejected.labels("rate_limited")._value.get() == 5


def test_a_redelivered_batch_is_counted_as_duplicates_and_not_stored_again(engine, processor):
    """What a worker killed after its commit but before its acks sees on restart: the broker
    redelivers the batch (new packet ids); every message is recognised by (vin, seq) and dropped."""
    car = make_car(engine, make_owner(engine))
    t, ev_topic = topics.telemetry_topic(car.vin), topics.vehicle_topic(car.vin, "events")
    sent = [*(inbound(t, encode_telemetry(i, now_ms(), signals(i)), mid=i) for i in range(4)),
            inbound(ev_topic, encode_event(1, now_ms(), "door_opened"), mid=10)]
    first = processor.process(sent)
    assert (first.messages_stored, first.events_stored, first.duplicates) == (4, 1, 0)
    assert processor.metrics.duplicates._value.get() == 0

    redelivered = [Inbound(100 + m.mid, m.qos, m.topic, m.payload, now_ms(), generation=1) for m in sent]
    again = processor.process([*redelivered, redelivered[0]])  # one of them twice in the same batch
    assert (again.messages_stored, again.events_stored, again.duplicates) == (0, 0, 5)
    assert processor.metrics.duplicates._value.get() == 6
    assert count(engine, telemetry) == 4 and count(engine, events) == 1
    assert stored_signals(engine) == 100
