"""Helpers shared by the benchmarks: private brokers and databases, a paced publisher, stats."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_ADMIN = os.environ.get("CHELIAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_BROKERS: dict[int, int] = {}
"""port -> pid of the private Mosquitto serving it (for CPU accounting)."""


def broker_pid(port: int) -> int:
    return _BROKERS.get(port, -1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mosquitto(extra_conf: str = "") -> Iterator[int]:
    """A private Mosquitto tuned like production (queues raised above Debian's defaults)."""
    if not shutil.which("mosquitto"):
        raise SystemExit("bench needs the mosquitto binary (apt-get install mosquitto)")
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="chelian-bench-mq-"))
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 1000000\nmax_inflight_messages 0\nset_tcp_nodelay true\n" + extra_conf)
    # Output to a file, never a pipe nobody reads: a full pipe stalls Mosquitto.
    log = open(tmp / "mosquitto.log", "wb")  # noqa: SIM115 - closed with the broker
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    _BROKERS[port] = proc.pid
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        _BROKERS.pop(port, None)
        proc.terminate()
        proc.wait(5)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def postgres_database() -> Iterator[str]:
    from chelian.storage.db import make_engine

    name = f"chelian_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_ADMIN).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _publish(port: int, vins: list[str], messages: int, rate: float, start_seq: int, ready, done) -> None:
    """Child process: every car sends `messages` telemetry messages, ts = publish time."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from chelian.link.topics import telemetry_topic
    from tests.factories import signals

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(0)  # paho scans its inflight table per ack when bounded
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    # Signals are serialised once; only seq and ts are spliced in per message, so the
    # publisher is not what limits the run.
    bodies = [json.dumps(signals(i), separators=(",", ":")) for i in range(60)]
    topics = [telemetry_topic(v) for v in vins]
    ready.set()
    started = time.time()
    sent = 0
    last = None
    for i in range(messages):
        for topic in topics:
            if rate:
                due = started + sent / rate
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
            body = f'{{"seq":{start_seq + i},"ts":{time.time_ns() // 1_000_000},"signals":{bodies[i % 60]}}}'
            last = client.publish(topic, body.encode(), qos=1)
            sent += 1
    if last is not None:
        last.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    done.put(started)


def start_publisher(port: int, vins: list[str], messages: int, rate: float = 0, start_seq: int = 0):
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publish, args=(port, vins, messages, rate, start_seq, ready, done), daemon=True)
    proc.start()
    ready.wait(30)
    return proc, done


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latencies_ms(marks: list[tuple[int, list[bytes]]]) -> list[float]:
    """Commit time minus publish time (`ts` inside each payload) for every message."""
    out: list[float] = []
    for committed_ms, payloads in marks:
        for payload in payloads:
            try:
                out.append(committed_ms - json.loads(payload)["ts"])
            except (ValueError, KeyError):
                continue
    return out
