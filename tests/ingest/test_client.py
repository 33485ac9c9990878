"""The paho client chelian builds (`make_client`): what a received message leaves behind."""

from __future__ import annotations

import gc
import queue

import pytest

from chelian.ingest.worker import make_client
from chelian.link.topics import telemetry_topic
from chelian.runtime import ingest_endpoint

MESSAGES = 200


@pytest.fixture
def receiver(embedded_stack):
    """A connected make_client client, subscribed to every car's telemetry, and its inbox."""
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    subscribed: queue.SimpleQueue = queue.SimpleQueue()
    client = make_client("gc-probe", ingest_endpoint(embedded_stack.settings, embedded_stack.service))
    client.on_message = lambda _c, _u, msg: inbox.put(("any", msg.topic))
    client.on_connect = lambda c, _u, _f, _rc, _p=None: c.subscribe("v1/vehicles/+/telemetry", qos=1)
    client.on_subscribe = lambda *_args: subscribed.put(True)
    host, port = embedded_stack.settings.broker_host_port
    client.connect(host, port)
    client.loop_start()
    try:
        assert subscribed.get(timeout=10)
        yield client, inbox
    finally:
        client.disconnect()
        client.loop_stop()


def _publish(embedded_stack, count: int) -> str:
    creds = embedded_stack.add_car("1M8GDM9AXKP042788")
    car = embedded_stack.car_client(creds)
    for seq in range(count):
        car.publish(telemetry_topic(creds.vin), b'{"seq": %d, "ts": 1, "signals": {}}' % seq, qos=1)
    return telemetry_topic(creds.vin)


def test_a_received_message_leaves_nothing_for_the_cycle_collector(embedded_stack, receiver):
    """paho's filter lookup made a reference cycle per message (ingest/worker.py: AcyclicMatcher):
    in a busy process that garbage set off young collections that stalled every request."""
    client, inbox = receiver
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds lands in gc.garbage
    try:
        topic = _publish(embedded_stack, MESSAGES)
        assert [inbox.get(timeout=10) for _ in range(MESSAGES)] == [("any", topic)] * MESSAGES
        gc.collect()
        from_paho = [o for o in gc.garbage if getattr(o, "__module__", "").startswith("paho.")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert from_paho == []


def test_per_topic_callbacks_still_match(embedded_stack, receiver):
    client, inbox = receiver
    client.message_callback_add("v1/vehicles/+/telemetry",
                                lambda _c, _u, msg: inbox.put(("filtered", msg.topic)))
    topic = _publish(embedded_stack, 1)
    assert inbox.get(timeout=10) == ("filtered", topic)
