"""The agent's SQLite queue: order, durability across a restart, paging past the memory
mirror, the size bound, and sequence numbers that never repeat."""

from __future__ import annotations

import pytest

from chelian.agent.store_forward import QueueDB


def fill(box, n, channel="telemetry", start_ts=1_000):
    for i in range(n):
        seq = box.next_seq(channel)
        box.append(channel, seq, start_ts + i, f"m{seq}".encode())


def drain(box, window=7):
    out = []
    while rows := box.peek(window):
        out.extend(rows)
        box.remove(r.id for r in rows)
    return out


def test_messages_come_out_in_order_once_and_survive_a_restart(tmp_path):
    db = QueueDB(tmp_path / "q.db")
    box = db.outbox("VIN1", mem_rows=10)
    fill(box, 95)  # far more than the memory mirror holds
    first = box.peek(3)
    box.remove([first[0].id, first[1].id])
    assert len(box) == 93
    db.close()

    box = QueueDB(tmp_path / "q.db").outbox("VIN1", mem_rows=10)
    assert len(box) == 93
    rows = drain(box)
    assert [r.seq for r in rows] == list(range(3, 96))
    assert [r.ts_ms for r in rows] == list(range(1_002, 1_095))
    assert rows[0].payload == b"m3"
    assert len(box) == 0 and box.peek(5) == []


def test_appends_while_replaying_stay_behind_the_backlog(tmp_path):
    box = QueueDB(tmp_path / "q.db").outbox("VIN1", mem_rows=4)
    fill(box, 10)
    seen = []
    while rows := box.peek(3):
        seen.extend(r.seq for r in rows)
        box.remove(r.id for r in rows)
        if len(seen) < 12:
            fill(box, 1)  # live samples arrive during the replay
    assert seen == list(range(1, 14))  # 10 queued + 3 live, in the order they were taken


def test_cars_sharing_a_file_do_not_see_each_other(tmp_path):
    db = QueueDB(tmp_path / "q.db")
    a, b = db.outbox("A"), db.outbox("B")
    fill(a, 3)
    fill(b, 2)
    assert [r.payload for r in drain(a)] == [b"m1", b"m2", b"m3"]
    assert len(b) == 2 and [r.seq for r in b.peek(10)] == [1, 2]


def test_a_full_queue_drops_the_oldest_and_counts_them():
    box = QueueDB(None).outbox("VIN1", max_rows=5, mem_rows=2)
    fill(box, 8)
    assert len(box) == 5 and box.dropped == 3
    assert [r.seq for r in drain(box, 2)] == [4, 5, 6, 7, 8]


def test_sequence_numbers_never_repeat_after_a_restart(tmp_path):
    db = QueueDB(tmp_path / "q.db")
    box = db.outbox("VIN1", seq_block=10)
    assert [box.next_seq("telemetry") for _ in range(25)] == list(range(1, 26))
    assert box.next_seq("events") == 1  # each channel counts on its own
    db.close()
    again = QueueDB(tmp_path / "q.db").outbox("VIN1", seq_block=10)
    assert again.next_seq("telemetry") > 25
    assert again.next_seq("events") > 1
    assert QueueDB(tmp_path / "q.db").outbox("VIN2").next_seq("telemetry") == 1


def test_raise_floor_takes_over_an_older_counter(tmp_path):
    db = QueueDB(tmp_path / "q.db")
    box = db.outbox("VIN1")
    box.raise_floor("telemetry", 5_000)
    assert box.next_seq("telemetry") == 5_001
    box.raise_floor("telemetry", 10)  # never backwards
    assert box.next_seq("telemetry") == 5_002
    db.close()
    assert QueueDB(tmp_path / "q.db").outbox("VIN1").next_seq("telemetry") > 5_002


def test_nonsense_bounds_are_refused():
    with pytest.raises(ValueError):
        QueueDB(None).outbox("V", max_rows=0)


def test_uncommitted_samples_are_lost_on_a_crash_but_reserved_numbers_are_not(tmp_path):
    """A crash (no commit, no close) loses at most the group interval; numbers never repeat."""
    db = QueueDB(tmp_path / "q.db", commit_interval_s=3600)
    box = db.outbox("VIN1", seq_block=100)
    fill(box, 3)
    db.conn.close()  # the process dies: the open group transaction is rolled back
    again = QueueDB(tmp_path / "q.db").outbox("VIN1")
    assert again.next_seq("telemetry") > 3


def test_maybe_commit_commits_after_the_interval(tmp_path):
    db = QueueDB(tmp_path / "q.db", commit_interval_s=0.0)
    fill(db.outbox("VIN1"), 2)
    db.maybe_commit()
    db.conn.close()
    assert len(QueueDB(tmp_path / "q.db").outbox("VIN1")) == 2


def test_token_bucket_paces_under_the_cloud_limit():
    from chelian.agent.store_forward import TokenBucket

    now = [0.0]
    bucket = TokenBucket(40.0, 400, lambda: now[0])
    assert bucket.available() == 400
    bucket.take(400)
    assert bucket.available() == 0 and bucket.wait_s() == pytest.approx(1 / 40)
    now[0] = 1.0
    assert bucket.available() == 40
    now[0] = 100.0
    assert bucket.available() == 400  # never more than the burst
    # Over any window the bucket lets through at most burst + rate * window.
    sent, now[0] = 0, 200.0
    bucket = TokenBucket(40.0, 400, lambda: now[0])
    for _ in range(6000):
        n = bucket.available()
        bucket.take(n)
        sent += n
        now[0] += 0.01
    assert sent <= 400 + 40 * 60 + 1
