"""The background sender: due outbox rows out, with exponential backoff between tries.

One daemon thread, woken at once when the Notifier adds rows and otherwise polling every
`poll_s`, so rows left by a previous run (or deferred by a grace period) go out after a
restart without anyone prompting. A failed try is retried after base * 2^attempts seconds
(capped); after `max_attempts` the row is marked failed and kept for inspection.
Senders are looked up by channel in one table; a channel without a sender (e-mail with no
SMTP configured) leaves its rows pending.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from chelian.services.notifications import email, webhooks
from chelian.services.notifications.outbox import payload_bytes
from chelian.storage.db import now_ms
from chelian.storage.repositories import notifications as repo
from chelian.storage.repositories.notifications import Outgoing

log = logging.getLogger("chelian.notifications")

Sender = Callable[[Outgoing], None]

LEASE_MS = 120_000
"""How long a claimed row is left alone: far longer than one send may take (10 s timeouts)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 10

    def next_ms(self, now: int, attempts_so_far: int) -> int | None:
        """When to try again after the (attempts_so_far + 1)-th failure; None = give up."""
        if attempts_so_far + 1 >= self.max_attempts:
            return None
        return now + int(min(self.cap_s, self.base_s * 2**attempts_so_far) * 1000)


def webhook_sender(row: Outgoing) -> None:
    webhooks.deliver(row.target, row.secret or "", payload_bytes(row.payload), row.event, row.key)


def email_sender(config: email.SmtpConfig) -> Sender:
    def send(row: Outgoing) -> None:
        email.send(config, row.target, row.payload["subject"], row.payload["body"], row.key)

    return send


class NotificationWorker:
    def __init__(
        self,
        engine: Engine,
        senders: dict[str, Sender],
        *,
        backoff: Backoff = Backoff(),
        poll_s: float = 1.0,
        batch: int = 50,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.backoff = backoff
        self.poll_s = poll_s
        self.batch = batch
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_env(cls, engine: Engine, **kwargs: object) -> NotificationWorker:
        senders: dict[str, Sender] = {"webhook": webhook_sender}
        smtp = email.SmtpConfig.from_env()
        if smtp is not None:
            senders["email"] = email_sender(smtp)
        return cls(engine, senders, **kwargs)  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> NotificationWorker:
        self._thread = threading.Thread(target=self._run, name="chelian-notifications", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent_any = self.run_once()
            except Exception:  # the database may be briefly away: keep the thread alive
                log.exception("notification_worker_failed")
                sent_any = 0
            if not sent_any:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def run_once(self) -> int:
        """Try every due row once; returns how many were tried."""
        with self.engine.connect() as conn:
            rows = repo.due(conn, self.clock(), self.batch, list(self.senders))
        for row in rows:
            if self._stop.is_set():
                break
            self._try(row)
        return len(rows)

    def _try(self, row: Outgoing) -> None:
        with self.engine.begin() as conn:  # several workers (processes) may see the same due row
            if not repo.claim(conn, row.id, row.next_attempt_ms, self.clock() + LEASE_MS):
                return
        try:
            self.senders[row.channel](row)
        except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt, retried with backoff
            retry_at = self.backoff.next_ms(self.clock(), row.attempts)
            log.warning(
                "notification_failed id=%d channel=%s attempt=%d error=%s retry_at=%s",
                row.id,
                row.channel,
                row.attempts + 1,
                exc,
                retry_at,
            )
            with self.engine.begin() as conn:
                repo.mark_failed_attempt(conn, row.id, str(exc), retry_at)
            return
        with self.engine.begin() as conn:
            repo.mark_sent(conn, row.id, self.clock())
        log.info("notification_sent id=%d channel=%s event=%s", row.id, row.channel, row.event)
