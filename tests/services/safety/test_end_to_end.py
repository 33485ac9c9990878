"""Crash -> incident -> signed webhook + e-mail, through a real broker and ingest, on both
deployment shapes (embedded amqtt + SQLite, Mosquitto + PostgreSQL)."""

from __future__ import annotations

import json
import os

from sqlalchemy import select

from chelian.events import EventBus
from chelian.link import topics
from chelian.link.codec import encode_event, encode_telemetry
from chelian.metrics import Metrics
from chelian.runtime import build_ingest
from chelian.services.notifications import webhooks
from chelian.services.notifications.email import SmtpConfig
from chelian.services.notifications.worker import NotificationWorker, email_sender, webhook_sender
from chelian.services.safety import names as n
from chelian.services.safety.platform import SafetyServices
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from chelian.storage.repositories import incidents, notifications, vehicles
from chelian.storage.tables import telemetry
from tests.factories import new_vin
from tests.fixtures_brokers import wait_until
from tests.services.notifications.servers import smtp_server, webhook_receiver

SECRET = "whsec_e2e"


def test_crash_through_the_broker_opens_one_incident_and_notifies(broker_stack, request):
    stack = broker_stack
    creds = stack.add_car(new_vin())
    engine = stack.engine
    with engine.connect() as conn:
        car = vehicles.by_vin(conn, creds.vin)
    safety = SafetyServices.build(engine, EventBus(), Catalog.builtin(), grace_ms=300)
    with webhook_receiver() as hook, smtp_server() as mailbox:
        with engine.begin() as conn:
            notifications.add_subscription(conn, car.owner_id, hook.url, SECRET, ["*"], now_ms())
            notifications.add_contact(conn, car.owner_id, "Kim", "kim@example.com", None, now_ms())
        worker = NotificationWorker(
            engine,
            {"webhook": webhook_sender, "email": email_sender(SmtpConfig(mailbox.host, mailbox.port))},
            poll_s=0.1,
        ).start()
        safety.notifier.wake = worker.wake
        ingest = build_ingest(
            stack.settings,
            engine,
            Catalog.builtin(),
            Metrics(),
            observers=safety.observers,
            client_id=f"test-safety-{os.getpid()}-{request.node.name[-20:]}",
        ).start()
        try:
            client = stack.car_client(creds)
            t0 = now_ms() - 5_000
            where = {
                "Vehicle.CurrentLocation.Latitude": 52.52,
                "Vehicle.CurrentLocation.Longitude": 13.405,
                "Vehicle.CurrentLocation.Heading": 45.0,
            }
            drive = [(72.0, 0.1), (72.0, 0.0), (71.0, -63.0), (0.0, -2.0)]
            for i, (speed, accel) in enumerate(drive):
                body = {"Vehicle.Speed": speed, "Vehicle.Acceleration.Longitudinal": accel, **where}
                assert client.publish(
                    topics.telemetry_topic(creds.vin), encode_telemetry(i, t0 + i * 250, body)
                )

            def opened():
                with engine.connect() as conn:
                    return incidents.for_vehicle(conn, car.id, 10)

            assert wait_until(opened, timeout=15)
            [incident] = opened()
            with engine.connect() as conn:
                received = conn.execute(
                    select(telemetry.c.received_ms).where(
                        telemetry.c.vehicle_id == car.id, telemetry.c.seq == 3
                    )
                ).scalar_one()
            assert incident.opened_ms - received < 1000, "crash must be detected within 1 s of arrival"
            assert (incident.cause, incident.speed_before_kmh, incident.latitude, incident.heading) == (
                "impact",
                72.0,
                52.52,
                45.0,
            )

            # The car's own crash event about the same crash: no second incident, no second alert.
            assert client.publish(
                topics.vehicle_topic(creds.vin, "events"),
                encode_event(0, t0 + 1_100, "crash", {"severity": "high"}),
            )
            assert wait_until(lambda: hook.received and len(mailbox.messages) >= 2, timeout=15)
            with engine.connect() as conn:
                assert wait_until(lambda: len(incidents.updates(conn, incident.id)) == 2, timeout=10)
        finally:
            ingest.stop()
            worker.stop()
        assert len(opened()) == 1
        opened_hooks = [(h, b) for h, b in hook.received if h["X-Chelian-Event"] == n.INCIDENT_OPENED]
        assert len(opened_hooks) == 1
        headers, body = opened_hooks[0]
        assert webhooks.verify(SECRET, headers["X-Chelian-Signature"], body)
        payload = json.loads(body)
        assert payload["vin"] == creds.vin and payload["data"]["incident_id"] == incident.id
        assert payload["data"]["speed_before_kmh"] == 72.0
        recipients = sorted(r for rcpt, _ in mailbox.messages for r in rcpt)
        assert recipients == ["kim@example.com", "owner@example.com"]
        assert all(m["Subject"] == f"Crash detected: {creds.vin}" for _, m in mailbox.messages)
        assert "52.520000, 13.405000" in mailbox.messages[0][1].get_payload()
