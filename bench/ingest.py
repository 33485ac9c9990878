"""Ingest benchmark: N cars x M messages (25 signals each) through Mosquitto into PostgreSQL.

Two consumers of the very same published stream are measured in one run:
* baseline: one plain paho subscriber (auto-ack) that parses each message and COPYs its
  signals into a bare table: the floor cost of "MQTT -> PostgreSQL" in Python;
* chelian: the real ingest worker (manual ack after commit, dedupe, validation, latest
  state, dead-lettering, metrics).

Each is run twice: flooded (throughput) and paced at half the baseline's throughput
(publish -> committed latency). The last line is one JSON object with the figures.

    .venv/bin/python bench/ingest.py --cars 200 --messages 50
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench._common import (  # noqa: E402
    latencies_ms,
    mosquitto,
    percentile,
    postgres_database,
    start_publisher,
)
from chelian.config import Settings  # noqa: E402
from chelian.ingest.processor import Processor  # noqa: E402
from chelian.ingest.worker import BrokerEndpoint, IngestWorker  # noqa: E402
from chelian.link import topics  # noqa: E402
from chelian.metrics import Metrics  # noqa: E402
from chelian.signals import Catalog  # noqa: E402
from chelian.storage.db import make_engine, now_ms, upgrade  # noqa: E402
from chelian.storage.repositories import vehicles  # noqa: E402
from chelian.storage.tables import users  # noqa: E402
from tests.factories import new_vin  # noqa: E402

SIGNALS_PER_MESSAGE = 25


class TimedProcessor(Processor):
    """Records when each batch committed; payloads are parsed for latency after the run."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.marks: list[tuple[int, list[bytes]]] = []
        self.committed = 0

    def commit(self, messages, batch):  # type: ignore[no-untyped-def]
        result = super().commit(messages, batch)
        self.marks.append((now_ms(), [m.payload for m in messages]))
        self.committed += len(messages)
        return result


class BaselineSubscriber:
    """One plain subscriber: auto-ack, json.loads, COPY (vin, path, ts, value) rows."""

    def __init__(self, port: int, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.marks: list[tuple[int, list[bytes]]] = []
        self.committed = 0
        self.stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline", protocol=mqtt.MQTTv311)
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload))
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topics.all_vehicles("telemetry"), 1)
        self.client.connect("127.0.0.1", port)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.client.loop_start()
        self.thread.start()
        time.sleep(0.5)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _run(self) -> None:
        raw = self.engine.raw_connection()
        conn = raw.driver_connection
        while not self.stop.is_set():
            try:
                batch = [self.inbox.get(timeout=0.1)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + 0.05
            while len(batch) < 2000 and time.monotonic() < deadline:
                try:
                    batch.append(self.inbox.get(timeout=max(0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY baseline (vin, path, ts_ms, value) FROM STDIN") as copy:
                    for topic, payload in batch:
                        body = json.loads(payload)
                        vin = topic.split("/")[2]
                        for path, value in body["signals"].items():
                            copy.write_row((vin, path, body["ts"], str(value)))
            self.marks.append((now_ms(), [p for _, p in batch]))
            self.committed += len(batch)
        raw.close()


def wait_for(consumer, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while consumer.committed < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    if consumer.committed < expected:
        raise SystemExit(f"timed out: {consumer.committed}/{expected} messages committed")


def run_phase(port: int, vins: list[str], messages: int, consumer, rate: float, start_seq: int) -> dict:
    consumer.marks.clear()
    before = consumer.committed
    proc, done = start_publisher(port, vins, messages, rate=rate, start_seq=start_seq)
    started = done.get(timeout=600)
    wait_for(consumer, before + len(vins) * messages, timeout_s=600)
    elapsed = consumer.marks[-1][0] / 1000 - started
    proc.join(10)
    lat = latencies_ms(consumer.marks)
    return {"signals_per_s": len(vins) * messages * SIGNALS_PER_MESSAGE / elapsed,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "seconds": elapsed}


def scale_out_phase(port: int, url: str, engine, vins: list[str], messages: int, workers: int,  # type: ignore[no-untyped-def]
                    start_seq: int) -> float:
    """The production scale-out path: N `chelian ingest` processes in one share group.

    Throughput is read from the database (rows committed over time), since no single
    process sees the whole stream.
    """
    # A group of its own: the single worker's persistent session from the previous phase is
    # still a member of "chelian-ingest" and would be handed its share while offline.
    env = {**os.environ, "CHELIAN_INGEST_PASSWORD": "bench", "CHELIAN_INGEST_SHARE_GROUP": "bench-scaled", "CHELIAN_MAX_MESSAGES_PER_S": "1e9",
           "CHELIAN_MAX_MESSAGE_BURST": str(10**9), "CHELIAN_MAX_CLOCK_SKEW_S": "3600"}
    data_dir = tempfile.mkdtemp(prefix="chelian-bench-ingest-")
    procs = [subprocess.Popen([sys.executable, "-m", "chelian", "ingest", "--worker-id", f"bench-{i}",
                               "--data-dir", data_dir, "--database-url", url,
                               "--mqtt-url", f"mqtt://127.0.0.1:{port}"],
                              env=env, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(data_dir, f"ingest-{i}.log"), "wb"))  # noqa: SIM115
             for i in range(workers)]
    try:
        with engine.connect() as conn:
            before = conn.exec_driver_sql("SELECT count(*) FROM telemetry").scalar_one()
        time.sleep(3)  # workers connect and join the group
        expected = before + len(vins) * messages
        proc, done = start_publisher(port, vins, messages, rate=0, start_seq=start_seq)
        started = done.get(timeout=600)
        count, finished = before, time.time()
        deadline = time.monotonic() + 600
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.05)
            with engine.connect() as conn:
                count = conn.exec_driver_sql("SELECT count(*) FROM telemetry").scalar_one()
            finished = time.time()
        proc.join(10)
        return (count - before) * SIGNALS_PER_MESSAGE / (finished - started)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cars", type=int, default=200)
    parser.add_argument("--messages", type=int, default=50, help="messages per car per phase")
    parser.add_argument("--workers", type=int, default=2,
                        help="ingest processes for the scale-out phase (shared subscription group)")
    parser.add_argument("--batch-max", type=int, default=Settings().ingest_batch_max,
                        help="ingest batch size (default: the setting's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with mosquitto() as port, postgres_database() as url:
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            owner = conn.execute(users.insert().values(email="bench@example.com", password_hash="x",
                                                       created_ms=now_ms()).returning(users.c.id)).scalar_one()
            vins = [new_vin() for _ in range(args.cars)]
            for vin in vins:
                vehicles.create(conn, vin=vin, make="Bench", model="Car", year=2024, owner_id=owner,
                                created_ms=now_ms())
            conn.exec_driver_sql("CREATE TABLE baseline (vin text, path text, ts_ms bigint, value text)")
        n = args.cars * args.messages
        print(f"bench: {args.cars} cars x {args.messages} messages x {SIGNALS_PER_MESSAGE} signals "
              f"= {n * SIGNALS_PER_MESSAGE} signals per phase, Mosquitto -> PostgreSQL")

        baseline = BaselineSubscriber(port, engine)
        baseline.start()
        base_flood = run_phase(port, vins, args.messages, baseline, rate=0, start_seq=0)
        pace = base_flood["signals_per_s"] / SIGNALS_PER_MESSAGE / 2
        base_paced = run_phase(port, vins, args.messages, baseline, rate=pace, start_seq=0)
        baseline.close()
        print(f"baseline  flood {base_flood['signals_per_s']:>10,.0f} signals/s   "
              f"paced at {pace * SIGNALS_PER_MESSAGE:,.0f}/s: p50 {base_paced['p50_ms']:.1f} ms "
              f"p99 {base_paced['p99_ms']:.1f} ms")

        settings = Settings.load(max_messages_per_s=1e9, max_message_burst=10**9, max_clock_skew_s=3600)
        processor = TimedProcessor.__new__(TimedProcessor)
        base = Processor.from_settings(settings, engine, Catalog.builtin(), Metrics())
        TimedProcessor.__init__(processor, base.pipeline, base.writer, base.metrics)
        endpoint = BrokerEndpoint("127.0.0.1", port, "bench", "bench", mqtt5=False, share_group="chelian-ingest")
        worker = IngestWorker(processor, endpoint, client_id="bench-ingest", batch_max=args.batch_max,
                              batch_wait_ms=settings.ingest_batch_wait_ms).start()
        flood = run_phase(port, vins, args.messages, processor, rate=0, start_seq=1000)
        paced = run_phase(port, vins, args.messages, processor, rate=pace, start_seq=2000)
        worker.stop()
        print(f"chelian   flood {flood['signals_per_s']:>10,.0f} signals/s   "
              f"paced at {pace * SIGNALS_PER_MESSAGE:,.0f}/s: p50 {paced['p50_ms']:.1f} ms p99 {paced['p99_ms']:.1f} ms")
        ratio = flood["signals_per_s"] / base_flood["signals_per_s"]
        print(f"ratio chelian/baseline: {ratio:.2f}")
        scaled = scale_out_phase(port, url, engine, vins, args.messages, args.workers, start_seq=3000)
        print(f"chelian x{args.workers} processes (shared subscription) flood {scaled:>10,.0f} signals/s")
        engine.dispose()
    print(json.dumps({
        "signals_per_s": round(flood["signals_per_s"]),
        "baseline_signals_per_s": round(base_flood["signals_per_s"]),
        "ratio": round(ratio, 3),
        "p50_ms": round(paced["p50_ms"], 1),
        "p99_ms": round(paced["p99_ms"], 1),
        "baseline_p50_ms": round(base_paced["p50_ms"], 1),
        "baseline_p99_ms": round(base_paced["p99_ms"], 1),
        "paced_signals_per_s": round(pace * SIGNALS_PER_MESSAGE),
        "scale_out_workers": args.workers,
        "scale_out_signals_per_s": round(scaled),
        "batch_max": args.batch_max,
        "cars": args.cars,
        "messages_per_car": args.messages,
    }))


if __name__ == "__main__":
    main()
