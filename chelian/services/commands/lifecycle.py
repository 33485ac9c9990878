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
from chelian.errors import AuthError, ConflictError, NotFoundError, ValidationError
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
from chelian.storage.repositories.commands import CallerView, Car, CommandRow, Settled
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
ORIGIN_USER: Final = "user"
"""A command the user asked for (their API token, the console, their own signed envelope)."""


def service_origin(name: str) -> str:
    """The audit trail's origin of a command a platform service sends on a user's behalf."""
    return f"service:{name}"


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(request)).hexdigest()


def is_autocommit(engine: Engine) -> bool:
    """Whether `engine` was created with isolation_level="AUTOCOMMIT" (runtime.command_engine)."""
    return getattr(engine.dialect, "_on_connect_isolation_level", None) == "AUTOCOMMIT"


def _summary(type_: str, args: dict[str, Any], expires_in_s: int) -> str:
    """A request, as a conflict names it (built only for that)."""
    return f"{type_} {canonical(args).decode()} expiring in {expires_in_s}s"


def _same_request(existing: CommandRow, key: str | None, digest: str,
                  summary: Callable[[], str]) -> CommandRow:
    """`existing`, made by this Idempotency-Key, if it answers the same request; else ConflictError."""
    if existing.request_hash != digest:
        raise ConflictError(f"Idempotency-Key {key!r} was used for another request (command "
                            f"{existing.id}: {existing.type} {canonical(existing.args).decode()}), "
                            f"not for {summary()}")
    log.info("%s id=%s idempotency_key=%s", COMMAND_REPEATED, existing.id, key)
    return existing


def caller_car(caller: CallerView, vin: str) -> tuple[Car, int]:
    """(the car, the user's id) of a caller found by token and VIN; AuthError for a bad token,
    NotFoundError for a car that is not theirs."""
    if caller.user_id is None:
        raise AuthError("invalid or expired token")
    if caller.vehicle is None:
        raise NotFoundError(f"no vehicle {vin} in your account")
    return caller.vehicle, caller.user_id


class CommandService:
    """Business rules for commands; `dispatch` (set by the relay) hands new ones to MQTT."""

    def __init__(self, engine: Engine, platform_key: PlatformKey, notifier: Notifier | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        if is_autocommit(engine):  # runtime.command_engine: autocommit is the pool's own mode
            self.autocommit = engine
            self.engine = engine.execution_options(isolation_level="READ COMMITTED")
        else:
            self.engine = engine
            self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        """`autocommit`: for work that needs no multi-statement transaction: no BEGIN/COMMIT/
        ROLLBACK round trips (a read costs 2 instead of 4). Given an engine whose connections
        are autocommit already (the runtime's), the hot path switches no isolation level on
        checkout and back on return; only `engine.begin()` (rare: expiries, pins) does."""
        self.platform_key = platform_key
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.dispatch: Callable[[str, str, bytes], None] | None = None
        """(command id, VIN, envelope bytes) of each new command; the relay's `submit`."""
        self.pinned_keys = PinnedKeys()
        """Cars' ack keys as this process last read them (acks.py; re-checked when settling)."""
        self.poll_s = POLL_S
        """How often a waiter re-reads without a wake-up; raised by the runtime once every
        settlement is known to wake this process's waiters (its own relay, or a wakeups.Listener)."""
        self.announce = True
        """NOTIFY other processes of settlements (wakeups.py). The runtime switches it off when
        this is the only API process: nobody else waits, and each NOTIFY would cost this
        process's listener a wake-up only to drop its own message."""
        self.async_pool: Any = None
        """An async connection pool (storage/async_pool.py) for `request_async`; None: worker threads."""
        self.online: Callable[[str], bool] | None = None
        """Set by the relay with `dispatch`: is this car online now? A new command for an online
        car is recorded `sent` by its INSERT (no second UPDATE) and dispatched with sent=True."""

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> CommandService:
        return cls(engine, PlatformKey.load_or_create(settings.data_dir))

    # --- creating --------------------------------------------------------------------------

    def create(self, vehicle: Car | Vehicle, user_id: int, type_: str, args: dict[str, Any],
               expires_in_s: int | None = None,
               idempotency_key: str | None = None, *, origin: str = ORIGIN_USER) -> tuple[CommandRow, bool]:
        """Sign and record a platform command; (command, created). created=False: an idempotent repeat.

        `origin` is what asks on the user's behalf, for the audit trail: a platform service
        passes `service:<name>`."""
        args, expires_in_s = self._checked(type_, args, expires_in_s)
        digest = self._digest(vehicle.vin, type_, args, expires_in_s)
        with self.autocommit.connect() as conn:
            existing = self._repeat_of(conn, user_id, idempotency_key, digest,
                                       lambda: _summary(type_, args, expires_in_s))
            if existing is not None:
                return existing, False
            # Committed on its own: if the insert does not happen, the counter has a gap -
            # harmless, cars only need counters never to repeat.
            counter = repo.next_counter(conn, vehicle.id, self.platform_key.kid)
            return self._sign_and_insert(conn, vehicle, user_id, idempotency_key, digest, type_, args,
                                         expires_in_s, counter, origin=origin)

    def request(self, token_hash: str, vin: str, type_: str, args: dict[str, Any],
                expires_in_s: int | None = None,
                idempotency_key: str | None = None) -> tuple[Car, CommandRow, bool]:
        """`create` for an API request: the bearer token's user and their car by VIN checked
        (AuthError, NotFoundError), the Idempotency-Key looked up and the counter taken in
        one round trip on PostgreSQL (repo.intake), then one INSERT - on one connection.
        A repeat is found before anything is signed; the unique (requester, key) constraint
        still decides between two racing twins."""
        try:
            args, expires_in_s = self._checked(type_, args, expires_in_s)
        except ValidationError:
            with self.autocommit.connect() as conn:  # who asks comes first: 401/404 before 400
                caller_car(repo.caller_view(conn, token_hash, self.clock(), vin.strip().upper()), vin)
            raise
        now = self.clock()
        with self.autocommit.connect() as conn:
            found = repo.intake(conn, token_hash, now, vin.strip().upper(), idempotency_key,
                                self.platform_key.kid)
            vehicle, user_id = caller_car(found.caller, vin)
            digest = self._digest(vehicle.vin, type_, args, expires_in_s)
            if found.prior is not None:
                return vehicle, _same_request(found.prior, idempotency_key, digest,
                                              lambda: _summary(type_, args, expires_in_s)), False
            assert found.counter is not None, "intake takes a counter when there is no earlier command"
            return vehicle, *self._sign_and_insert(conn, vehicle, user_id, idempotency_key, digest, type_,
                                                   args, expires_in_s, found.counter, now, asker=token_hash)

    async def request_async(self, token_hash: str, vin: str, type_: str, args: dict[str, Any],
                            expires_in_s: int | None = None,
                            idempotency_key: str | None = None) -> tuple[Car, CommandRow, bool]:
        """`request` awaited on the event loop, where the service has an async pool (PostgreSQL):
        intake and INSERT on an async connection, so a new command costs no worker thread and
        none of the GIL hand-offs one costs under load. What is rare goes to `request` in a
        worker thread, which decides it the same way: an invalid request (who asks is checked
        first there), an Idempotency-Key's repeat, a twin that won the race."""
        def in_thread() -> Any:
            return run_in_threadpool(self.request, token_hash, vin, type_, args, expires_in_s,
                                     idempotency_key)

        if self.async_pool is None:
            return await in_thread()
        try:
            checked, expires = self._checked(type_, args, expires_in_s)
        except ValidationError:
            return await in_thread()
        now = self.clock()
        inserted = False  # the connection goes back to the pool before any fallback waits on a thread
        async with self.async_pool.connection() as aconn:
            caller, prior_id, counter = await repo.intake_async(aconn, token_hash, now, vin.strip().upper(),
                                                                idempotency_key, self.platform_key.kid)
            vehicle, user_id = caller_car(caller, vin)
            if prior_id is None:
                assert counter is not None, "intake takes a counter when there is no earlier command"
                digest = self._digest(vehicle.vin, type_, checked, expires)
                values = self._row(vehicle, user_id, idempotency_key, digest,
                                   self._signed(vehicle, type_, checked, expires, counter, now, ORIGIN_USER))
                inserted = await repo.insert_command_once_async(aconn, **values)
        if not inserted:  # a repeat, or a twin that won the race
            return await in_thread()
        return vehicle, self._created(vehicle, user_id, values, token_hash), True

    @staticmethod
    def _checked(type_: str, args: dict[str, Any], expires_in_s: int | None) -> tuple[dict[str, Any], int]:
        """(normalised args, expiry in s), or ValidationError."""
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
        return args, expires_in_s

    @staticmethod
    def _digest(vin: str, type_: str, args: dict[str, Any], expires_in_s: int) -> str:
        return request_hash({"vin": vin, "type": type_, "args": args, "expires_in_s": expires_in_s})

    def _sign_and_insert(self, conn: Any, vehicle: Car | Vehicle, user_id: int,
                         idempotency_key: str | None, digest: str, type_: str, args: dict[str, Any],
                         expires_in_s: int, counter: int, now: int | None = None,
                         origin: str = ORIGIN_USER, asker: str | None = None) -> tuple[CommandRow, bool]:
        fields = self._signed(vehicle, type_, args, expires_in_s, counter,
                              self.clock() if now is None else now, origin)
        return self._insert(conn, vehicle, user_id, idempotency_key, digest,
                            lambda: _summary(type_, args, expires_in_s), fields, asker)

    def _signed(self, vehicle: Car | Vehicle, type_: str, args: dict[str, Any], expires_in_s: int,
                counter: int, now: int, origin: str) -> dict[str, Any]:
        """A new platform command's signed envelope and the fields recorded with it."""
        command_id, kid = uuid.uuid4().hex, self.platform_key.kid
        command = Command(command_id, vehicle.vin, type_, args, counter, now, now + expires_in_s * 1000)
        sealed = self.platform_key.seal(command.body(), id_hint=command_id)
        return dict(id=command_id, type=type_, args=args, signer=SIGNER_PLATFORM, kid=kid, counter=counter,
                    payload=sealed.wire(), env_hash=sealed.hash, created_ms=now, issued_ms=now,
                    expires_ms=command.exp, origin=origin)

    def record_presigned(self, vehicle: Car | Vehicle, user_id: int, command: Command, kid: str,
                         payload: bytes, env_hash: str,
                         idempotency_key: str | None) -> tuple[CommandRow, bool]:
        """Record an envelope a device signed (checked by presigned.py); the bytes go out unchanged."""
        digest = request_hash({"vin": vehicle.vin, "presigned": env_hash})

        def summary() -> str:
            return f"the pre-signed {command.type} {command.id}"

        with self.autocommit.connect() as conn:
            existing = self._repeat_of(conn, user_id, idempotency_key, digest, summary)
            same_id = repo.get(conn, command.id)
        if existing is not None:
            return existing, False
        if same_id is not None:
            if same_id.env_hash == env_hash and same_id.vehicle_id == vehicle.id:
                return same_id, False
            raise ConflictError(f"command id {command.id} is already used by another command")
        fields = dict(id=command.id, type=command.type, args=command.args, signer=SIGNER_DEVICE, kid=kid,
                      counter=command.ctr, payload=payload, env_hash=env_hash, created_ms=self.clock(),
                      issued_ms=command.iat, expires_ms=command.exp, origin=ORIGIN_USER)
        try:
            with self.autocommit.connect() as conn:
                return self._insert(conn, vehicle, user_id, idempotency_key, digest, summary, fields)
        except IntegrityError:  # the same id, submitted concurrently
            raise ConflictError(f"command id {command.id} is already used by another command") from None

    @staticmethod
    def _repeat_of(conn: Any, user_id: int, key: str | None, digest: str,
                   summary: Callable[[], str]) -> CommandRow | None:
        """The command this Idempotency-Key already made, if the request is the same one."""
        if key is None:
            return None
        existing = repo.by_idempotency_key(conn, user_id, key)
        return None if existing is None else _same_request(existing, key, digest, summary)

    def _insert(self, conn: Any, vehicle: Car | Vehicle, user_id: int, idempotency_key: str | None,
                digest: str, summary: Callable[[], str], fields: dict[str, Any],
                asker: str | None = None) -> tuple[CommandRow, bool]:
        """`asker`: the digest of the token that asked; the new command is remembered for it
        (notify.py) before it is dispatched, so its waiter reads no database."""
        values = self._row(vehicle, user_id, idempotency_key, digest, fields)
        if not repo.insert_command_once(conn, **values):
            # a concurrent twin won
            existing = self._repeat_of(conn, user_id, idempotency_key, digest, summary)
            assert existing is not None, "only an Idempotency-Key conflict skips the insert"
            return existing, False
        return self._created(vehicle, user_id, values, asker), True

    def _row(self, vehicle: Car | Vehicle, user_id: int, idempotency_key: str | None, digest: str,
             fields: dict[str, Any]) -> dict[str, Any]:
        """The new command's columns. A car online now gets the command at once (the relay
        publishes it right after the INSERT): it is recorded `sent` by the INSERT rather than
        by a second statement. Should the publish not happen (the car just went offline, the
        process dies), the row is an unanswered `sent` command: resent when its car comes
        online and by the leader's sweep."""
        sent = self.dispatch is not None and self.online is not None and self.online(vehicle.vin)
        now = fields["created_ms"]
        return dict(vehicle_id=vehicle.id, status=SENT if sent else QUEUED, requested_by=user_id,
                    idempotency_key=idempotency_key, request_hash=digest, attempts=1 if sent else 0,
                    sent_ms=now if sent else None, last_sent_ms=now if sent else None, **fields)

    def _created(self, vehicle: Car | Vehicle, user_id: int, values: dict[str, Any],
                 asker: str | None) -> CommandRow:
        """After the INSERT: log, remember for `asker`, and dispatch."""
        row = CommandRow(**values, reason=None, result=None, acked_ms=None, car_ts_ms=None, finished_ms=None)
        log.info("%s id=%s vin=%s type=%s user=%s origin=%s signer=%s kid=%s ctr=%d expires_ms=%d",
                 COMMAND_CREATED, row.id, vehicle.vin, row.type, user_id, row.origin, row.signer, row.kid,
                 row.counter, row.expires_ms)
        if asker is not None:
            self.notifier.remember(row.id, (asker, vehicle.vin), row, row.expires_ms, row.created_ms)
        if self.dispatch is not None:
            if row.status == SENT:
                self.dispatch(row.id, vehicle.vin, row.payload, True)  # type: ignore[call-arg]
            else:
                self.dispatch(row.id, vehicle.vin, row.payload)
        return row

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

    async def wait(self, command_id: str, wait_s: float, read: Callable[[], CommandRow],
                   asker: tuple[str, str] | None = None) -> CommandRow:
        """`read()` (run in a worker thread; it may check who is asking, and must raise if they
        may not see the command) once the command is final, or after `wait_s` (capped at
        MAX_WAIT_S). The watch is registered before the first read, so no wake-up is lost; a
        wake-up that carries the settled fields needs no second read at all. `asker`: (token
        digest, VIN) of the request: if it created the command here, the first read is from
        memory (notify.py)."""
        deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
        with self.notifier.watch(command_id) as watch:
            known = None if asker is None else self.notifier.recall(command_id, asker, self.clock())
            row = known if known is not None else await run_in_threadpool(read)
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
        """One statement, so autocommit: one round trip instead of BEGIN, UPDATE and COMMIT.
        Off the hot path (a new command for an online car is recorded sent by its INSERT): a
        queued command whose car came online, or a resend. Every process that remembers one of
        them for its caller (notify.py) forgets it: its attempts and send times changed."""
        with self.autocommit.connect() as conn:
            moved = repo.mark_sent(conn, command_ids, sent_ms or self.clock(), TRANSITIONS[SENT], SENT)
            if self.announce:
                announce(conn, self.notifier.origin, dict.fromkeys(moved))
        self.notifier.forget(moved)
        return moved

    def pending(self, *, vehicle_id: int | None = None, sent_before_ms: int | None = None,
                states: tuple[str, ...] = UNSETTLED) -> list[tuple[str, str, bytes]]:
        with self.autocommit.connect() as conn:
            return repo.pending(conn, states, self.clock(), vehicle_id=vehicle_id,
                                sent_before_ms=sent_before_ms)

    def expire_due(self) -> list[str]:
        with self.engine.begin() as conn:
            expired = repo.expire_due(conn, self.clock(), unsent=(QUEUED,), sent=(SENT,), expired=EXPIRED,
                                      sent_grace_ms=EXPIRY_GRACE_MS)
            if self.announce:
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
            if moved and self.announce:
                announce(conn, self.notifier.origin, {command_id: None})
        if moved:
            self.notifier.notify([command_id])
        return moved

    def settle_acks(self, acks: list[dict[str, Any]]) -> dict[tuple[str, str], Settled]:
        """Apply verified acks (id, vehicle_id, env_hash, kid, status, reason, result, acked_ms,
        car_ts_ms, finished_ms), each only if it answers the envelope sent under that id and
        `kid` is still the car's pinned key; one transaction for the lot.
        Returns {(id, env_hash): Settled} for those that moved.

        On PostgreSQL one statement settles the batch and (if `announce`) NOTIFYs the other
        processes' waiters (wakeups.py) in the same transaction; autocommit, so that is one round trip."""
        by_key = {(ack["id"], ack["env_hash"]): ack for ack in acks}
        postgres = self.engine.dialect.name == "postgresql"
        notify = (CHANNEL, self.notifier.origin, MAX_PAYLOAD_BYTES) if self.announce else None
        with self.autocommit.connect() if postgres else self.engine.begin() as conn:
            moved = repo.settle_many(conn, acks, ACK_SETTLES_FROM, notify=notify)
        changes = {key[0]: {name: by_key[key][name] for name in SETTLED_FIELDS}
                   | {"sent_ms": done.sent_ms, "last_sent_ms": done.last_sent_ms, "attempts": done.attempts}
                   for key, done in moved.items()}
        self.notifier.notify(list(changes), changes)  # this process: no round trip
        return moved
