"""Metrics summed over processes (`chelian serve --workers N`) and the connected-car gauge."""

from __future__ import annotations

import multiprocessing

from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from chelian.metrics import Metrics, share_across_processes


def samples(text: bytes) -> dict[str, float]:
    return {s.name + repr(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def _worker_process(count: int) -> None:
    metrics = Metrics()  # spawned: prometheus_client reads the inherited environment on import
    assert metrics.shared_dir is not None
    metrics.signals_stored.inc(count)
    metrics.messages_in.labels("telemetry").inc()


def test_processes_sharing_a_directory_report_the_sum_whichever_answers(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"left over from an earlier run")
    undo = share_across_processes(tmp_path / "metrics", fresh=True)
    try:
        main = Metrics()
        main.signals_stored.inc(5)
        ctx = multiprocessing.get_context("spawn")
        for count in (7, 11):
            child = ctx.Process(target=_worker_process, args=(count,))
            child.start()
            child.join(60)
            assert child.exitcode == 0
        seen = samples(main.exposition())
        assert seen["chelian_signals_stored_total[]"] == 23
        assert seen["chelian_messages_received_total[('channel', 'telemetry')]"] == 2
    finally:
        undo()
    assert values.ValueClass is values.MutexValue
    assert Metrics().shared_dir is None  # later metrics in this process are its own again


def test_a_process_of_its_own_reports_only_its_registry():
    first, second = Metrics(), Metrics()
    first.signals_stored.inc(3)
    second.signals_stored.inc(4)
    assert samples(first.exposition())["chelian_signals_stored_total[]"] == 3


def test_connected_cars_are_read_at_scrape_time():
    metrics, online = Metrics(), [2]
    metrics.count_connected_with(lambda: online[0])
    assert samples(metrics.exposition())["chelian_vehicles_connected[]"] == 2
    online[0] = 5
    assert samples(metrics.exposition())["chelian_vehicles_connected[]"] == 5
