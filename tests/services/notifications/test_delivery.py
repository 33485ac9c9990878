"""The outbox and its worker: signed webhooks with retries, e-mail over SMTP, idempotency,
and rows that survive a restart."""

from __future__ import annotations

import json

from chelian.events.bus import DomainEvent
from chelian.services.notifications import webhooks
from chelian.services.notifications.email import SmtpConfig
from chelian.services.notifications.outbox import Notifier
from chelian.services.notifications.worker import Backoff, NotificationWorker, email_sender, webhook_sender
from chelian.services.safety import names as n
from chelian.storage.db import now_ms
from chelian.storage.repositories import notifications as repo
from chelian.storage.repositories import vehicles
from tests.factories import make_car, make_owner
from tests.fixtures_brokers import wait_until
from tests.services.notifications.servers import smtp_server, webhook_receiver

SECRET = "whsec_test"


def owner_and_car(engine):
    owner = make_owner(engine)
    creds = make_car(engine, owner)
    with engine.connect() as conn:
        return owner, vehicles.by_vin(conn, creds.vin)


def event(car, name=n.UNAUTHORISED_MOVEMENT_DETECTED, key="moved:x:1", **data) -> DomainEvent:
    return DomainEvent(name, car.vin, car.id, now_ms(), key, {"latitude": 1.0, "longitude": 2.0, **data})


def outbox(engine):
    with engine.connect() as conn:
        return repo.due(conn, 2**62, 100, ["webhook", "email"]) + [
            o for s in ("sent", "failed") for o in _with_status(conn, s)
        ]


def _with_status(conn, status):
    from sqlalchemy import select

    from chelian.storage.tables_safety import notification_outbox as t

    return [repo.Outgoing(*r) for r in conn.execute(select(t).where(t.c.status == status))]


def test_signature_round_trip_and_tampering():
    body = b'{"a":1}'
    header = webhooks.sign(SECRET, 1_700_000_000, body)
    assert webhooks.verify(SECRET, header, body, now=1_700_000_010)
    assert not webhooks.verify(SECRET, header, b'{"a":2}', now=1_700_000_010)
    assert not webhooks.verify("other", header, body, now=1_700_000_010)
    assert not webhooks.verify(SECRET, header, body, now=1_700_001_000)  # too old: a replay
    assert not webhooks.verify(SECRET, "garbage", body)


def test_webhook_is_signed_retried_with_backoff_and_sent_once(engine):
    owner, car = owner_and_car(engine)
    with webhook_receiver(fail_first=2) as hook:
        with engine.begin() as conn:
            repo.add_subscription(conn, owner.id, hook.url, SECRET, ["*"], now_ms())
            repo.add_subscription(conn, owner.id, hook.url + "?other", SECRET, [n.INCIDENT_OPENED], now_ms())
        notifier = Notifier(engine)
        notifier.handle(event(car))
        notifier.handle(event(car))  # the same event again: no second notification
        rows = [o for o in outbox(engine) if o.channel == "webhook"]
        assert len(rows) == 1
        worker = NotificationWorker(engine, {"webhook": webhook_sender}, backoff=Backoff(base_s=0.05))
        worker.start()
        try:
            assert wait_until(lambda: hook.received, timeout=10)
        finally:
            worker.stop()
        assert hook.attempts == 3
        headers, body = hook.received[0]
        assert webhooks.verify(SECRET, headers["X-Chelian-Signature"], body)
        assert headers["X-Chelian-Event"] == n.UNAUTHORISED_MOVEMENT_DETECTED
        payload = json.loads(body)
        assert payload["vin"] == car.vin and payload["key"] == "moved:x:1"
        assert payload["data"]["latitude"] == 1.0
    [row] = [o for o in outbox(engine) if o.channel == "webhook"]
    assert (row.status, row.attempts) == ("sent", 3)


def test_gives_up_after_max_attempts(engine):
    owner, car = owner_and_car(engine)
    with engine.begin() as conn:
        repo.add_subscription(conn, owner.id, "http://127.0.0.1:9/nothing-listens", SECRET, ["*"], now_ms())
    Notifier(engine).handle(event(car))
    worker = NotificationWorker(
        engine, {"webhook": webhook_sender}, backoff=Backoff(base_s=0.0, max_attempts=3)
    )
    for _ in range(5):
        worker.run_once()
    [row] = [o for o in outbox(engine) if o.channel == "webhook"]
    assert (row.status, row.attempts) == ("failed", 3)
    assert "nothing-listens" in row.last_error


def test_backoff_doubles_up_to_the_cap():
    b = Backoff(base_s=2, cap_s=10, max_attempts=5)
    assert [b.next_ms(0, a) for a in range(5)] == [2000, 4000, 8000, 10000, None]


def test_pending_rows_survive_a_restart_and_email_reaches_contacts(engine):
    owner, car = owner_and_car(engine)
    with engine.begin() as conn:
        repo.add_contact(conn, owner.id, "Sam", "sam@example.com", "+4412345", now_ms())
        repo.add_contact(conn, owner.id, "No mail", None, "+4400000", now_ms())
    Notifier(engine).handle(event(car, n.INCIDENT_OPENED, "incident:1:opened", speed_before_kmh=64.0))
    # No worker ran ("the process died"); a new one started later finds and sends the rows.
    with smtp_server() as mailbox:
        config = SmtpConfig(mailbox.host, mailbox.port, sender="alerts@chelian.test")
        worker = NotificationWorker(engine, {"email": email_sender(config)})
        assert worker.run_once() == 2
        assert worker.run_once() == 0
    recipients = sorted(r for rcpt, _ in mailbox.messages for r in rcpt)
    assert recipients == sorted([owner.email, "sam@example.com"])
    message = mailbox.messages[0][1]
    assert message["Subject"] == f"Crash detected: {car.vin}"
    assert message["From"] == "alerts@chelian.test"
    assert "Speed before impact (km/h): 64.0" in message.get_payload()


def test_email_is_not_sent_before_the_grace_period(engine):
    owner, car = owner_and_car(engine)
    later = now_ms() + 60_000
    Notifier(engine).handle(event(car, n.INCIDENT_OPENED, "incident:2:opened", notify_after_ms=later))
    with smtp_server() as mailbox:
        worker = NotificationWorker(engine, {"email": email_sender(SmtpConfig(mailbox.host, mailbox.port))})
        assert worker.run_once() == 0
        worker.clock = lambda: later
        assert worker.run_once() == 1
    assert len(mailbox.messages) == 1


def test_two_workers_seeing_the_same_row_send_it_once(engine):
    owner, car = owner_and_car(engine)
    with webhook_receiver() as hook:
        with engine.begin() as conn:
            repo.add_subscription(conn, owner.id, hook.url, SECRET, ["*"], now_ms())
        Notifier(engine).handle(event(car))
        a, b = (NotificationWorker(engine, {"webhook": webhook_sender}) for _ in range(2))
        with engine.connect() as conn:
            [row] = repo.due(conn, now_ms(), 10, ["webhook"])
        a._try(row)
        b._try(row)  # b read the row before a sent it
        assert len(hook.received) == 1
