"""The command log and the per-(car, key) counters.

State changes are conditional UPDATEs (`WHERE status IN (...)`), so two relays, a sweeper
and an ack racing for one command cannot both win: whoever's UPDATE matches first decides,
the others see rowcount 0. Which transitions are legal is business logic and lives in
`services/commands/lifecycle.py`; this module only executes them.

Counters are bumped with INSERT ... ON CONFLICT DO UPDATE ... RETURNING in the caller's
transaction (both SQLite >= 3.35 and PostgreSQL): on PostgreSQL the row lock serialises
concurrent commands for the same car and key, on SQLite the database write lock does; either
way no two commands share a number.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from chelian.storage.repositories.vehicles import access_clause
from chelian.storage.tables import agent_keys, api_tokens, command_counters, commands, users, vehicles


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: str
    vehicle_id: int
    type: str
    args: dict[str, Any]
    status: str
    reason: str | None
    result: dict[str, Any] | None
    signer: str
    kid: str
    counter: int
    requested_by: int | None
    idempotency_key: str | None
    request_hash: str
    payload: bytes
    env_hash: str
    created_ms: int
    issued_ms: int
    expires_ms: int
    sent_ms: int | None
    last_sent_ms: int | None
    attempts: int
    acked_ms: int | None
    car_ts_ms: int | None
    finished_ms: int | None
    origin: str = "user"
    """What sent it on `requested_by`'s behalf: `user`, `service:<name>` (see tables.commands)."""


_NAMES = tuple(f.name for f in fields(CommandRow))
_COLUMNS = [commands.c[name] for name in _NAMES]
_PAYLOAD = _NAMES.index("payload")


def _command(values: Sequence[Any]) -> CommandRow:
    """A CommandRow from its columns in _NAMES order (the payload is a memoryview on PostgreSQL)."""
    row = list(values)
    row[_PAYLOAD] = bytes(row[_PAYLOAD])
    return CommandRow(*row)


_PG = psycopg_dialect()


def _driver_sql(statement: Any) -> tuple[str, dict[str, Any]]:
    """A statement built once, as PostgreSQL text for psycopg and its constant parameters."""
    compiled = statement.compile(dialect=_PG)
    return str(compiled), {name: value for name, value in compiled.params.items() if value is not None}


def _run_pg(conn: Connection, statement: tuple[str, dict[str, Any]], params: dict[str, Any]) -> Any:
    """Execute on the psycopg connection under `conn`, and return its cursor.

    For the few statements every command runs (intake, insert, caller look-up): SQLAlchemy's
    execution context and result wrapping cost ~70 us of CPU per statement here, more than
    psycopg itself (~50 us, the round trip's client side). Same connection, same transaction
    state; psycopg still prepares the statement after a few uses. Errors come out as
    SQLAlchemy's (IntegrityError, ...), and a broken connection is invalidated. While anyone
    listens for cursor events (tracing, tests counting statements) it goes through SQLAlchemy,
    so they see every statement."""
    sql, constants = statement
    if conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute:
        return conn.exec_driver_sql(sql, constants | params)
    raw = conn.connection.driver_connection
    try:
        return raw.execute(sql, constants | params)  # type: ignore[union-attr]
    except psycopg.Error as exc:
        broken = bool(getattr(raw, "broken", False) or getattr(raw, "closed", False))
        if broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=broken,
                                  dialect=conn.dialect) from exc


@dataclass(frozen=True, slots=True)
class Car:
    """What the command path needs of a `Vehicle` (which has these fields too)."""

    id: int
    vin: str


@dataclass(frozen=True, slots=True)
class CallerView:
    """Who asks (by bearer token), their car by VIN, and optionally one of its commands."""

    user_id: int | None
    vehicle: Car | None
    command: CommandRow | None


_N_VEHICLE = 2


def _caller_query(with_command: bool) -> Any:
    """Only the user's id and the car's id and VIN: every column read costs Python time in the
    driver (psycopg describes each one) on the hot path."""
    tokens = api_tokens.c
    joined = (api_tokens.join(users, users.c.id == tokens.user_id)
              .outerjoin(vehicles, and_(vehicles.c.vin == bindparam("vin"), access_clause(users.c.id))))
    columns = [users.c.id.label("user_id"), vehicles.c.id.label("vehicle_id"),
               vehicles.c.vin.label("vehicle_vin")]
    if with_command:
        joined = joined.outerjoin(commands, and_(commands.c.id == bindparam("command_id"),
                                                 commands.c.vehicle_id == vehicles.c.id))
        columns += _COLUMNS
    return (select(*columns).select_from(joined)
            .where(tokens.token_hash == bindparam("token_hash"), tokens.expires_ms > bindparam("now_ms"))
            .limit(1))


# The hot statements are built once and executed with parameters: building them per call
# (SQLAlchemy coercing every column and value) cost more Python time than the round trip.
_CALLER = {False: _caller_query(False), True: _caller_query(True)}
_CALLER_PG = {with_command: _driver_sql(query) for with_command, query in _CALLER.items()}
_GET = select(*_COLUMNS).where(commands.c.id == bindparam("command_id"))
_BY_KEY = select(*_COLUMNS).where(commands.c.requested_by == bindparam("user_id"),
                                  commands.c.idempotency_key == bindparam("key"))
_COUNTER = command_counters.c


def _bump(dialect_insert: Any) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE ... RETURNING: one statement, one round trip, for a
    car's first command too (it used to take UPDATE, INSERT and UPDATE again)."""
    return (dialect_insert(command_counters)
            .values(vehicle_id=bindparam("b_vehicle_id"), kid=bindparam("b_kid"), counter=1)
            .on_conflict_do_update(index_elements=[_COUNTER.vehicle_id, _COUNTER.kid],
                                   set_={"counter": _COUNTER.counter + 1})
            .returning(_COUNTER.counter))


_BUMP = {"postgresql": _bump(pg_insert), "sqlite": _bump(sqlite_insert)}


def caller_view(conn: Connection, token_hash: str, now_ms: int, vin: str,
                command_id: str | None = None) -> CallerView:
    """Token -> user, the user's car with this VIN, and that car's command: one round trip for
    what would otherwise be three queries on the command routes' hot path. The same rules as
    `users.user_for_token` (unexpired token) and `vehicles.accessible` (owner or fleet operator)."""
    params = {"token_hash": token_hash, "now_ms": now_ms, "vin": vin, "command_id": command_id}
    if conn.dialect.name == "postgresql":
        row = _run_pg(conn, _CALLER_PG[command_id is not None], params).fetchone()
    else:
        row = conn.execute(_CALLER[command_id is not None], params).first()
    if row is None:
        return CallerView(None, None, None)
    return _caller(row, command_id is not None)


def _caller(row: Sequence[Any], with_command: bool) -> CallerView:
    """[user id, *vehicle columns, *command columns (with_command)] -> CallerView."""
    vehicle = Car(row[1], row[2]) if row[1] is not None else None
    command = None
    if with_command and row[1 + _N_VEHICLE] is not None:
        command = _command(row[1 + _N_VEHICLE:])
    return CallerView(row[0], vehicle, command)


@dataclass(frozen=True, slots=True)
class Intake:
    """What creating a command needs to know first (`intake`): who asks, their car, the command
    their Idempotency-Key already made (`prior`), else the counter reserved for the new one."""

    caller: CallerView
    prior: CommandRow | None
    counter: int | None


def _intake_pg() -> Any:
    """One statement, one round trip (PostgreSQL): the caller and their car (`caller_view`'s
    rules), the command the Idempotency-Key already made, and - only when there is none and the
    car is theirs - the bumped counter (a data-modifying CTE: a repeat burns no counter)."""
    caller = _caller_query(False).cte("caller")
    user_id, vehicle_id = caller.c.user_id, caller.c.vehicle_id
    prior = (select(commands.c.id).select_from(commands).join(caller, commands.c.requested_by == user_id)
             .where(commands.c.idempotency_key == bindparam("key")).cte("prior"))
    bump = (pg_insert(command_counters)
            .from_select([_COUNTER.vehicle_id, _COUNTER.kid, _COUNTER.counter],
                         select(vehicle_id, bindparam("kid", type_=String), literal(1, Integer))
                         .where(vehicle_id.is_not(None), ~exists(select(prior.c.id))))
            .on_conflict_do_update(index_elements=[_COUNTER.vehicle_id, _COUNTER.kid],
                                   set_={"counter": _COUNTER.counter + 1})
            .returning(_COUNTER.counter).cte("bump"))
    return (select(*caller.c, prior.c.id, bump.c.counter)
            .select_from(caller.outerjoin(prior, true()).outerjoin(bump, true())))


_INTAKE_PG = _driver_sql(_intake_pg())


def intake(conn: Connection, token_hash: str, now_ms: int, vin: str, idempotency_key: str | None,
           kid: str) -> Intake:
    """Caller, car, the Idempotency-Key's earlier command or a fresh counter for (car, `kid`):
    one round trip on PostgreSQL, up to three statements on SQLite (in-process). Run it
    outside a transaction: the counter is taken even if the command is never inserted - a
    harmless gap (cars only need counters never to repeat)."""
    if conn.dialect.name == "postgresql":
        caller, prior_id, counter = _intake_row(_run_pg(conn, _INTAKE_PG, _intake_params(
            token_hash, now_ms, vin, idempotency_key, kid)).fetchone())
        return Intake(caller, None if prior_id is None else get(conn, prior_id), counter)
    caller = caller_view(conn, token_hash, now_ms, vin)
    if caller.user_id is None or caller.vehicle is None:
        return Intake(caller, None, None)
    prior = None if idempotency_key is None else by_idempotency_key(conn, caller.user_id, idempotency_key)
    return Intake(caller, prior, None if prior is not None else next_counter(conn, caller.vehicle.id, kid))


def _intake_params(token_hash: str, now_ms: int, vin: str, idempotency_key: str | None,
                   kid: str) -> dict[str, Any]:
    return {"token_hash": token_hash, "now_ms": now_ms, "vin": vin, "key": idempotency_key, "kid": kid}


def _intake_row(row: Sequence[Any] | None) -> tuple[CallerView, str | None, int | None]:
    """(caller, the Idempotency-Key's earlier command id, the counter taken) of _INTAKE_PG's row."""
    if row is None:
        return CallerView(None, None, None), None, None
    return _caller(row, False), row[-2], row[-1]


async def intake_async(aconn: psycopg.AsyncConnection, token_hash: str, now_ms: int, vin: str,
                       idempotency_key: str | None, kid: str) -> tuple[CallerView, str | None, int | None]:
    """`intake` on an autocommit async psycopg connection (PostgreSQL): the caller, the id of
    the command the Idempotency-Key already made, or else the counter taken for a new one."""
    sql, constants = _INTAKE_PG
    params = _intake_params(token_hash, now_ms, vin, idempotency_key, kid)
    cursor = await aconn.execute(sql, constants | params)
    return _intake_row(await cursor.fetchone())


def next_counter(conn: Connection, vehicle_id: int, kid: str) -> int:
    """The next counter for (car, key), atomically; the first is 1."""
    return conn.execute(_BUMP[conn.dialect.name], {"b_vehicle_id": vehicle_id, "b_kid": kid}).scalar_one()


def _insert_once(dialect_insert: Any) -> Any:
    c = commands.c
    return (dialect_insert(commands)
            .on_conflict_do_nothing(index_elements=[c.requested_by, c.idempotency_key]).returning(c.id))


_INSERT_ONCE = {"postgresql": _insert_once(pg_insert), "sqlite": _insert_once(sqlite_insert)}
_INSERT_ONCE_PG = _driver_sql(_INSERT_ONCE["postgresql"].values({name: bindparam(name) for name in _NAMES}))
_JSON_NAMES = tuple(c.name for c in commands.c if isinstance(c.type, JSON))


def insert_command_once(conn: Connection, **values: Any) -> bool:
    """Insert unless the (requester, Idempotency-Key) pair exists; False if it did (callers read
    the existing command). A reused id still raises IntegrityError."""
    if conn.dialect.name != "postgresql":
        return conn.execute(_INSERT_ONCE[conn.dialect.name], values).first() is not None
    return _run_pg(conn, _INSERT_ONCE_PG, _insert_params(values)).fetchone() is not None


async def insert_command_once_async(aconn: psycopg.AsyncConnection, **values: Any) -> bool:
    """`insert_command_once` on an autocommit async psycopg connection (PostgreSQL)."""
    sql, constants = _INSERT_ONCE_PG
    cursor = await aconn.execute(sql, constants | _insert_params(values))
    return await cursor.fetchone() is not None


def _insert_params(values: dict[str, Any]) -> dict[str, Any]:
    params = dict.fromkeys(_NAMES) | values
    for name in _JSON_NAMES:
        if params[name] is not None:
            params[name] = json.dumps(params[name])
    return params


def get(conn: Connection, command_id: str) -> CommandRow | None:
    row = conn.execute(_GET, {"command_id": command_id}).first()
    return _command(row) if row else None


def by_idempotency_key(conn: Connection, user_id: int, key: str) -> CommandRow | None:
    row = conn.execute(_BY_KEY, {"user_id": user_id, "key": key}).first()
    return _command(row) if row else None


def for_vehicle(conn: Connection, vehicle_id: int, *, limit: int, before_ms: int | None = None,
                status: str | None = None) -> list[CommandRow]:
    """Newest first."""
    query = select(*_COLUMNS).where(commands.c.vehicle_id == vehicle_id)
    if before_ms is not None:
        query = query.where(commands.c.created_ms < before_ms)
    if status is not None:
        query = query.where(commands.c.status == status)
    query = query.order_by(commands.c.created_ms.desc(), commands.c.id.desc()).limit(limit)
    return [_command(r) for r in conn.execute(query)]


def transition(conn: Connection, command_id: str, to: str, allowed_from: Iterable[str],
               **values: Any) -> bool:
    """Move one command to `to` if it is still in one of `allowed_from`; True if it moved."""
    return conn.execute(update(commands).where(commands.c.id == command_id,
                                               commands.c.status.in_(list(allowed_from)))
                        .values(status=to, **values)).rowcount == 1


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settling UPDATE returns: enough to log latencies and to hand waiters the row's
    send bookkeeping, which may have changed since they read it."""

    type: str
    created_ms: int
    sent_ms: int | None
    last_sent_ms: int | None
    attempts: int


def _settled_columns() -> list[Any]:
    c = commands.c
    return [c.type, c.created_ms, c.sent_ms, c.last_sent_ms, c.attempts]


def settle(conn: Connection, command_id: str, vehicle_id: int, env_hash: str, to: str,
           allowed_from: Iterable[str], *, kid: str | None = None, **values: Any) -> Settled | None:
    """An ack's transition, checked in the same statement: this car's command, the very envelope
    the ack quotes, still settleable, and (with `kid`) the key that signed the ack still the
    car's pinned key. None if it did not move."""
    c = commands.c
    checks = [c.id == command_id, c.vehicle_id == vehicle_id, c.env_hash == env_hash,
              c.status.in_(list(allowed_from))]
    if kid is not None:
        checks.append(exists().where(agent_keys.c.vehicle_id == vehicle_id, agent_keys.c.kid == kid))
    row = conn.execute(update(commands).where(*checks)
                       .values(status=to, **values).returning(*_settled_columns())).first()
    return None if row is None else Settled(*row)


_SETTLE_COLUMNS = (("id", String), ("vehicle_id", Integer), ("env_hash", String), ("kid", String),
                   ("status", String), ("reason", String), ("result", JSON), ("acked_ms", BigInteger),
                   ("car_ts_ms", BigInteger), ("finished_ms", BigInteger))


# One text for any batch size: psycopg prepares it once per connection, and SQLAlchemy never
# compiles it (a VALUES list of literal rows was compiled anew for every batch). The pin check
# lets the relay verify acks against keys it cached: a key unpinned since does not settle.
_SETTLE_MANY_PG = """
UPDATE commands AS c
   SET status = v.status, reason = v.reason, result = v.result::json, acked_ms = v.acked_ms,
       car_ts_ms = v.car_ts_ms, finished_ms = v.finished_ms
  FROM unnest(%(id)s::text[], %(vehicle_id)s::int[], %(env_hash)s::text[], %(kid)s::text[],
              %(status)s::text[], %(reason)s::text[], %(result)s::text[], %(acked_ms)s::bigint[],
              %(car_ts_ms)s::bigint[], %(finished_ms)s::bigint[])
       AS v(id, vehicle_id, env_hash, kid, status, reason, result, acked_ms, car_ts_ms, finished_ms)
 WHERE c.id = v.id AND c.vehicle_id = v.vehicle_id AND c.env_hash = v.env_hash
   AND c.status = ANY(%(allowed_from)s::text[])
   AND EXISTS (SELECT 1 FROM agent_keys AS k WHERE k.vehicle_id = v.vehicle_id AND k.kid = v.kid)
RETURNING c.id, c.env_hash, c.type, c.created_ms, c.sent_ms, c.last_sent_ms, c.attempts
"""

# The same UPDATE, and a NOTIFY per moved command in the same statement (so in the same
# transaction, even in autocommit): {"o": origin, "id", "c": what changed}, or "c": null when
# that would not fit in a NOTIFY payload.
_SETTLE_MANY_PG_NOTIFY = """
WITH moved AS (""" + _SETTLE_MANY_PG.replace("RETURNING c.id, c.env_hash, c.type, c.created_ms, c.sent_ms, "
                                             "c.last_sent_ms, c.attempts",
                                             "RETURNING c.id, c.env_hash, c.type, c.created_ms, c.sent_ms, "
                                             "c.last_sent_ms, c.attempts, c.status, c.reason, c.result, "
                                             "c.acked_ms, c.car_ts_ms, c.finished_ms") + """),
note AS (
  SELECT m.*, json_build_object('o', %(origin)s::text, 'id', m.id, 'c', json_build_object(
           'status', m.status, 'reason', m.reason, 'result', m.result, 'acked_ms', m.acked_ms,
           'car_ts_ms', m.car_ts_ms, 'finished_ms', m.finished_ms, 'sent_ms', m.sent_ms,
           'last_sent_ms', m.last_sent_ms, 'attempts', m.attempts))::text AS payload
    FROM moved AS m)
SELECT id, env_hash, type, created_ms, sent_ms, last_sent_ms, attempts,
       pg_notify(%(channel)s::text,
                 CASE WHEN octet_length(payload) <= %(max_bytes)s::int THEN payload
                      ELSE json_build_object('o', %(origin)s::text, 'id', id, 'c', NULL)::text END)
  FROM note
"""


def settle_many(conn: Connection, acks: list[dict[str, Any]], allowed_from: Iterable[str], *,
                notify: tuple[str, str, int] | None = None) -> dict[tuple[str, str], Settled]:
    """`settle` (with its pin check) for a batch of acks (dicts with the _SETTLE_COLUMNS): on PostgreSQL one
    UPDATE ... FROM unnest(arrays) RETURNING, however many acks - a relay under load settles a
    growing batch for the price of one round trip; SQLite (in-process, no round trips) loops.
    Keyed by (command id, envelope hash), so a batch holding a forged ack beside the real one
    credits the real one.

    `notify` = (channel, origin, max payload bytes): on PostgreSQL, the same statement also
    NOTIFYs the channel of each command it moved (services/commands/wakeups.py reads them), so
    the settlement and its announcement commit together, in one round trip."""
    if conn.dialect.name != "postgresql":
        moved = {}
        for ack in acks:
            fields = {k: ack[k] for k in ("reason", "result", "acked_ms", "car_ts_ms", "finished_ms")}
            done = settle(conn, ack["id"], ack["vehicle_id"], ack["env_hash"], ack["status"], allowed_from,
                          kid=ack["kid"], **fields)
            if done is not None:
                moved[ack["id"], ack["env_hash"]] = done
        return moved
    params: dict[str, Any] = {name: [ack[name] for ack in acks] for name, _kind in _SETTLE_COLUMNS}
    params["result"] = [None if r is None else json.dumps(r) for r in params["result"]]
    params["allowed_from"] = list(allowed_from)
    if notify is None:
        result = _run_pg(conn, (_SETTLE_MANY_PG, {}), params)
    else:
        params["channel"], params["origin"], params["max_bytes"] = notify
        result = _run_pg(conn, (_SETTLE_MANY_PG_NOTIFY, {}), params)
    return {(r[0], r[1]): Settled(*r[2:7]) for r in result}


_MARK_SENT = (
    update(commands).where(commands.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=case((commands.c.status.in_(bindparam("from_states", expanding=True)), bindparam("to")),
                        else_=commands.c.status),
            sent_ms=func.coalesce(commands.c.sent_ms, bindparam("now_ms")), last_sent_ms=bindparam("now_ms"),
            attempts=commands.c.attempts + 1)
    .returning(commands.c.id))


def mark_sent(conn: Connection, command_ids: list[str], now_ms: int, from_states: Iterable[str],
              to: str) -> list[str]:
    """Record a (re)send - a fact even when a fast ack already settled the command, so the state
    moves only from `from_states`, while times and attempts are always noted. Returns the ids."""
    params = {"ids": command_ids, "from_states": list(from_states), "to": to, "now_ms": now_ms}
    return [r[0] for r in conn.execute(_MARK_SENT, params)]


def pending(conn: Connection, states: Iterable[str], now_ms: int, *, vehicle_id: int | None = None,
            sent_before_ms: int | None = None) -> list[tuple[str, str, bytes]]:
    """(id, vin, payload) of unexpired commands in `states`, oldest first; optionally one car's,
    or only those last sent before `sent_before_ms` (due for a resend)."""
    c = commands.c
    query = (select(c.id, vehicles.c.vin, c.payload).join(vehicles, vehicles.c.id == c.vehicle_id)
             .where(c.status.in_(list(states)), c.expires_ms > now_ms))
    if vehicle_id is not None:
        query = query.where(c.vehicle_id == vehicle_id)
    if sent_before_ms is not None:
        query = query.where(c.last_sent_ms < sent_before_ms)
    return [(i, vin, bytes(p)) for i, vin, p in conn.execute(query.order_by(c.created_ms))]


def expire_due(conn: Connection, now_ms: int, *, unsent: Iterable[str], sent: Iterable[str], expired: str,
               sent_grace_ms: int) -> list[str]:
    """Expire what was never sent once past its expiry, what was sent once past expiry + grace."""
    c = commands.c
    due = or_(and_(c.status.in_(list(unsent)), c.expires_ms <= now_ms),
              and_(c.status.in_(list(sent)), c.expires_ms <= now_ms - sent_grace_ms))
    rows = conn.execute(update(commands).where(due).values(status=expired, finished_ms=now_ms)
                        .returning(c.id))
    return [r[0] for r in rows]
