"""A command's life on the cloud: created (signed, idempotent), sent, settled by an ack or expired.

    queued --send--> sent --ack--> succeeded | failed | rejected
       \\               \\
        `-- expiry ------`--> expired --late ack--> succeeded | failed | rejected

Who may move a command where is the TRANSITIONS table, executed as conditional UPDATEs, so a
relay, a sweeper and an ack racing for one command cannot both win. A late ack overrides
`expired` because the ack is the car's signed word on what it actually did.

A queued command expires at its `exp`; a sent one only `EXPIRY_GRACE_MS` later, because a car
whose clock runs behind may still act on it (it allows CLOCK_SKEW_MS) and its ack needs time to
come back.

Idempotency: an `Idempotency-Key` is scoped to the requesting user. The same key with the same
request (VIN, type, normalised args, expiry) returns the first command and sends nothing; with
a different request it is a ConflictError naming both.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from chelian.config import Settings
from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.services.commands.catalog import PLATFORM, ArgsError, spec_for
from chelian.services.commands.envelope import (
    CLOCK_SKEW_MS,
    FAILED,
    REJECTED,
    SUCCEEDED,
    Command,
    canonical,
)
from chelian.services.commands.keys import PinnedKeys, PlatformKey
from chelian.services.commands.notify import POLL_S, Notifier
from chelian.services.commands.wakeups import CHANNEL, MAX_PAYLOAD_BYTES, announce
from chelian.storage.db import now_ms
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories.commands import CommandRow, Settled
from chelian.storage.repositories.vehicles import Vehicle

log = logging.getLogger("chelian.commands")

QUEUED: Final = "queued"
SENT: Final = "sent"
EXPIRED: Final = "expired"
STATES: Final = (QUEUED, SENT, SUCCEEDED, FAILED, REJECTED, EXPIRED)
FINAL: Final = frozenset({SUCCEEDED, FAILED, REJECTED, EXPIRED})
UNSETTLED: Final = (QUEUED, SENT)

TRANSITIONS: Final = {
    SENT: (QUEUED, SENT),  # a resend stays sent
    EXPIRED: (QUEUED, SENT),
    SUCCEEDED: (QUEUED, SENT, EXPIRED),  # queued: another process's relay sent it
    FAILED: (QUEUED, SENT, EXPIRED),
    REJECTED: (QUEUED, SENT, EXPIRED),
}

ACK_SETTLES_FROM: Final = TRANSITIONS[SUCCEEDED]
assert TRANSITIONS[FAILED] == TRANSITIONS[REJECTED] == ACK_SETTLES_FROM, "acks settle in one statement"

SETTLED_FIELDS: Final = ("status", "reason", "result", "acked_ms", "car_ts_ms", "finished_ms")
"""What an ack changes on a command: handed to waiters with the wake-up, so they need not re-read."""

COMMAND_CREATED: Final = "command_created"
COMMAND_REPEATED: Final = "command_repeated"
COMMAND_EXPIRED: Final = "command_expired"

DEFAULT_EXPIRES_S: Final = 30
MAX_EXPIRES_S: Final = 24 * 3600
MAX_WAIT_S: Final = 30.0
EXPIRY_GRACE_MS: Final = CLOCK_SKEW_MS + 2_000
SIGNER_PLATFORM: Final = "platform"
SIGNER_DEVICE: Final = "device"


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(request)).hexdigest()


class CommandService:
    """Business rules for commands; `dispatch` (set by the relay) hands new ones to MQTT."""

    def __init__(self, engine: Engine, platform_key: PlatformKey, notifier: Notifier | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        """For work that needs no multi-statement transaction: no BEGIN/COMMIT/ROLLBACK round
        trips (a read costs 2 instead of 4, creating a command 4 instead of 6)."""
        self.platform_key = platform_key
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.dispatch: Callable[[str, str, bytes], None] | None = None
        """(command id, VIN, envelope bytes) of each new command; the relay's `submit`."""
        self.pinned_keys = PinnedKeys()
        """Cars' ack keys as this process last read them (acks.py; re-checked when settling)."""
        self.poll_s = POLL_S
        """How often a waiter re-reads without a wake-up; raised by the runtime once a
        wakeups.Listener brings other processes' settlements here."""

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> CommandService:
        return cls(engine, PlatformKey.load_or_create(settings.data_dir))

    # --- creating --------------------------------------------------------------------------

    def create(self, vehicle: Vehicle, user_id: int, type_: str, args: dict[str, Any],
               expires_in_s: int | None = None,
               idempotency_key: str | None = None) -> tuple[CommandRow, bool]:
        """Sign and record a platform command; (command, created). created=False: an idempotent repeat."""
        try:
            spec = spec_for(type_)
            args = spec.normalise(args)
        except ArgsError as exc:
            raise ValidationError(str(exc)) from None
        if not spec.allows(PLATFORM):
            raise ValidationError(f"{type_} needs an owner key: sign it on your device and submit it as "
                                  f'{{"signed": envelope}} (the platform key may not {type_})')
        expires_in_s = DEFAULT_EXPIRES_S if expires_in_s is None else expires_in_s
        if not 1 <= expires_in_s <= MAX_EXPIRES_S:
            raise ValidationError(f"expires_in_s must be between 1 and {MAX_EXPIRES_S}, got {expires_in_s}")
        digest = request_hash({"vin": vehicle.vin, "type": type_, "args": args, "expires_in_s": expires_in_s})
        summary = f"{type_} {canonical(args).decode()} expiring in {expires_in_s}s"
        now, command_id, kid = self.clock(), uuid.uuid4().hex, self.platform_key.kid
        with self.autocommit.connect() as conn:
            # No look-up of the Idempotency-Key first: nearly every key is new, and the insert
            # below finds a repeat by itself (ON CONFLICT), then returns the first command.
            # Committed on its own: if the insert does not happen, the counter has a gap -
            # harmless, cars only need counters never to repeat.
            counter = repo.next_counter(conn, vehicle.id, kid)
            command = Command(command_id, vehicle.vin, type_, args, counter, now, now + expires_in_s * 1000)
            sealed = self.platform_key.seal(command.body(), id_hint=command_id)
            return self._insert(conn, vehicle, user_id, idempotency_key, digest, summary, dict(
                id=command_id, type=type_, args=args, signer=SIGNER_PLATFORM, kid=kid, counter=counter,
                payload=sealed.wire(), env_hash=sealed.hash, created_ms=now, issued_ms=now,
                expires_ms=command.exp))

    def record_presigned(self, vehicle: Vehicle, user_id: int, command: Command, kid: str, payload: bytes,
                         env_hash: str, idempotency_key: str | None) -> tuple[CommandRow, bool]:
        """Record an envelope a device signed (checked by presigned.py); the bytes go out unchanged."""
        digest = request_hash({"vin": vehicle.vin, "presigned": env_hash})
        summary = f"the pre-signed {command.type} {command.id}"
        with self.autocommit.connect() as conn:
            existing = self._repeat(conn, user_id, idempotency_key, digest, summary)
            same_id = repo.get(conn, command.id)
        if existing is not None:
            return existing, False
        if same_id is not None:
            if same_id.env_hash == env_hash and same_id.vehicle_id == vehicle.id:
                return same_id, False
            raise ConflictError(f"command id {command.id} is already used by another command")
        fields = dict(id=command.id, type=command.type, args=command.args, signer=SIGNER_DEVICE, kid=kid,
                      counter=command.ctr, payload=payload, env_hash=env_hash, created_ms=self.clock(),
                      issued_ms=command.iat, expires_ms=command.exp)
        try:
            with self.autocommit.connect() as conn:
                return self._insert(conn, vehicle, user_id, idempotency_key, digest, summary, fields)
        except IntegrityError:  # the same id, submitted concurrently
            raise ConflictError(f"command id {command.id} is already used by another command") from None

    def _repeat(self, conn: Any, user_id: int, key: str | None, digest: str,
                summary: str) -> CommandRow | None:
        """The command this Idempotency-Key already made, if the request is the same one."""
        if key is None:
            return None
        existing = repo.by_idempotency_key(conn, user_id, key)
        if existing is None:
            return None
        if existing.request_hash != digest:
            raise ConflictError(f"Idempotency-Key {key!r} was used for another request (command "
                                f"{existing.id}: {existing.type} {canonical(existing.args).decode()}), "
                                f"not for {summary}")
        log.info("%s id=%s idempotency_key=%s", COMMAND_REPEATED, existing.id, key)
        return existing

    def _insert(self, conn: Any, vehicle: Vehicle, user_id: int, idempotency_key: str | None, digest: str,
                summary: str, fields: dict[str, Any]) -> tuple[CommandRow, bool]:
        values = dict(vehicle_id=vehicle.id, status=QUEUED, requested_by=user_id,
                      idempotency_key=idempotency_key, request_hash=digest, attempts=0, **fields)
        if not repo.insert_command_once(conn, **values):
            existing = self._repeat(conn, user_id, idempotency_key, digest, summary)  # a concurrent twin won
            assert existing is not None, "only an Idempotency-Key conflict skips the insert"
            return existing, False
        row = CommandRow(**values, reason=None, result=None, sent_ms=None, last_sent_ms=None, acked_ms=None,
                         car_ts_ms=None, finished_ms=None)
        log.info("%s id=%s vin=%s type=%s user=%s signer=%s kid=%s ctr=%d expires_ms=%d", COMMAND_CREATED,
                 row.id, vehicle.vin, row.type, user_id, row.signer, row.kid, row.counter, row.expires_ms)
        if self.dispatch is not None:
            self.dispatch(row.id, vehicle.vin, row.payload)
        return row, True

    # --- reading -----------------------------------------------------------------------------

    def get(self, vehicle_id: int, command_id: str) -> CommandRow:
        """The command (NotFoundError unless it is this car's), expired on read when overdue."""
        with self.autocommit.connect() as conn:
            row = repo.get(conn, command_id)
        if row is None or row.vehicle_id != vehicle_id:
            raise NotFoundError(f"no command {command_id} for this vehicle")
        return self.current(row)

    def current(self, row: CommandRow) -> CommandRow:
        """`row`, or its expired successor when it is overdue (no sweeper needed to be right)."""
        if row.status in UNSETTLED and self.clock() >= self._expiry_moment(row):
            self.expire_due()
            with self.autocommit.connect() as conn:
                row = repo.get(conn, row.id) or row
        return row

    def list(self, vehicle_id: int, *, limit: int, before_ms: int | None = None,
             status: str | None = None) -> list[CommandRow]:
        with self.autocommit.connect() as conn:
            return repo.for_vehicle(conn, vehicle_id, limit=limit, before_ms=before_ms, status=status)

    async def wait(self, command_id: str, wait_s: float, read: Callable[[], CommandRow]) -> CommandRow:
        """`read()` (run in a worker thread; it may check who is asking, and must raise if they
        may not see the command) once the command is final, or after `wait_s` (capped at
        MAX_WAIT_S). The watch is registered before the first read, so no wake-up is lost; a
        wake-up that carries the settled fields needs no second read at all."""
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        with self.notifier.watch(command_id) as watch:
            row = await run_in_threadpool(read)
            while True:
                remaining = deadline - time.monotonic()
                if row.status in FINAL or remaining <= 0:
                    return row
                until_expiry = max(self._expiry_moment(row) - self.clock(), 0) / 1000 + 0.005
                await watch.wait(min(remaining, self.poll_s, until_expiry))
                change = watch.take_change()
                row = replace(row, **change) if change else await run_in_threadpool(read)

    @staticmethod
    def _expiry_moment(row: CommandRow) -> int:
        return row.expires_ms + (EXPIRY_GRACE_MS if row.status == SENT else 0)

    # --- what the relay calls ------------------------------------------------------------

    def mark_sent(self, command_ids: list[str], sent_ms: int | None = None) -> list[str]:
        """One statement, so autocommit: one round trip instead of BEGIN, UPDATE and COMMIT."""
        with self.autocommit.connect() as conn:
            return repo.mark_sent(conn, command_ids, sent_ms or self.clock(), TRANSITIONS[SENT], SENT)

    def pending(self, *, vehicle_id: int | None = None, sent_before_ms: int | None = None,
                states: tuple[str, ...] = UNSETTLED) -> list[tuple[str, str, bytes]]:
        with self.autocommit.connect() as conn:
            return repo.pending(conn, states, self.clock(), vehicle_id=vehicle_id,
                                sent_before_ms=sent_before_ms)

    def expire_due(self) -> list[str]:
        with self.engine.begin() as conn:
            expired = repo.expire_due(conn, self.clock(), unsent=(QUEUED,), sent=(SENT,), expired=EXPIRED,
                                      sent_grace_ms=EXPIRY_GRACE_MS)
            announce(conn, self.notifier.origin, dict.fromkeys(expired))
        for command_id in expired:
            log.info("%s id=%s", COMMAND_EXPIRED, command_id)
        if expired:
            self.notifier.notify(expired)
        return expired

    def settle(self, command_id: str, status: str, **values: Any) -> bool:
        """Force an outcome (operators, tests); acks go through `settle_ack`."""
        with self.engine.begin() as conn:
            moved = repo.transition(conn, command_id, status, TRANSITIONS[status], **values)
            if moved:
                announce(conn, self.notifier.origin, {command_id: None})
        if moved:
            self.notifier.notify([command_id])
        return moved

    def settle_acks(self, acks: list[dict[str, Any]]) -> dict[tuple[str, str], Settled]:
        """Apply verified acks (id, vehicle_id, env_hash, kid, status, reason, result, acked_ms,
        car_ts_ms, finished_ms), each only if it answers the envelope sent under that id and
        `kid` is still the car's pinned key; one transaction for the lot.
        Returns {(id, env_hash): Settled} for those that moved.

        On PostgreSQL one statement settles the batch and NOTIFYs the other processes' waiters
        (wakeups.py) in the same transaction; autocommit, so that is one round trip."""
        by_key = {(ack["id"], ack["env_hash"]): ack for ack in acks}
        postgres = self.engine.dialect.name == "postgresql"
        with self.autocommit.connect() if postgres else self.engine.begin() as conn:
            moved = repo.settle_many(conn, acks, ACK_SETTLES_FROM,
                                     notify=(CHANNEL, self.notifier.origin, MAX_PAYLOAD_BYTES))
        changes = {key[0]: {name: by_key[key][name] for name in SETTLED_FIELDS}
                   | {"sent_ms": done.sent_ms, "last_sent_ms": done.last_sent_ms, "attempts": done.attempts}
                   for key, done in moved.items()}
        self.notifier.notify(list(changes), changes)  # this process: no round trip
        return moved
