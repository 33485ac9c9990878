"""A redelivered rejected message is dead-lettered once (both databases), and migration 0006
adds the digest that makes it so and takes it away again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from chelian.ingest.batch import Batch
from chelian.ingest.rejections import MALFORMED_JSON, Rejection
from chelian.ingest.writers import writer_for
from chelian.storage.db import alembic_config, make_engine, upgrade
from chelian.storage.tables import metadata, rejected_messages

TOPIC = "v1/vehicles/1M8GDM9AXKP042788/telemetry"


def _rejection(payload: bytes, received_ms: int, reason: str = MALFORMED_JSON) -> Rejection:
    return Rejection(TOPIC, "1M8GDM9AXKP042788", reason, "not JSON", payload, received_ms)


def _rows(engine) -> list[tuple[bytes, int]]:
    with engine.connect() as conn:
        r = rejected_messages.c
        return [tuple(row) for row in conn.execute(select(r.payload, r.received_ms).order_by(r.id))]


def test_a_redelivered_rejection_is_kept_once_and_other_ones_all_are(engine):
    writer = writer_for(engine)
    writer.write(Batch(rejections=[_rejection(b"{broken", 1_000)]))
    # The broker redelivers it (the ingest died before acking), later and beside a new one.
    writer.write(Batch(rejections=[_rejection(b"{broken", 2_000), _rejection(b"{broken again", 2_000)]))
    writer.write(Batch(rejections=[_rejection(b"{broken", 3_000, reason="rate_limited")]))
    assert _rows(engine) == [(b"{broken", 1_000), (b"{broken again", 2_000), (b"{broken", 3_000)]


def test_oversized_messages_that_differ_only_past_the_kept_part_are_both_kept(engine):
    head = b'{"signals":{' + b" " * 5000

    def oversized(whole: bytes, received_ms: int) -> Rejection:
        return Rejection(TOPIC, "1M8GDM9AXKP042788", "payload_too_large", "too big", whole[:4096],
                         received_ms, whole_payload=whole)

    first, second = oversized(head + b"1}}", 1_000), oversized(head + b"2}}", 2_000)
    writer_for(engine).write(Batch(rejections=[first]))
    writer_for(engine).write(Batch(rejections=[second, first]))  # and the first one redelivered
    assert [t for _, t in _rows(engine)] == [1_000, 2_000]


def test_the_same_rejection_twice_in_one_batch_is_kept_once(engine):
    writer_for(engine).write(Batch(rejections=[_rejection(b"\xff", 1_000), _rejection(b"\xff", 1_001)]))
    assert _rows(engine) == [(b"\xff", 1_000)]


def test_0006_matches_the_table_and_round_trips(database_url):
    engine = make_engine(database_url)
    try:
        def columns() -> set[str]:
            return {c["name"] for c in inspect(engine).get_columns("rejected_messages")}

        only_dead_letters = {"include_object": lambda _o, name, type_, _r, _c:
                             type_ != "table" or name == "rejected_messages"}
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts=only_dead_letters), metadata) == []
        writer_for(engine).write(Batch(rejections=[_rejection(b"kept", 1_000)]))
        command.downgrade(alembic_config(database_url), "0005")
        assert "digest" not in columns()
        upgrade(database_url)
        assert "digest" in columns()
        with engine.connect() as conn:  # the old row survived, with no digest
            old_rows = select(func.count()).where(rejected_messages.c.digest.is_(None))
            assert conn.execute(old_rows).scalar() == 1
    finally:
        engine.dispose()
