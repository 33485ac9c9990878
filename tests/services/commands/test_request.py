"""The API's way in (`CommandService.request`): caller, car, Idempotency-Key and counter found
together, a command for an online car recorded `sent` by its INSERT, the command engine in
autocommit mode, and a single API process that announces nothing to other processes."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError

from chelian.errors import AuthError, ConflictError, NotFoundError, ValidationError
from chelian.runtime import command_engine, start_wakeups
from chelian.security.hashing import token_digest
from chelian.services.accounts.signup import log_in
from chelian.services.commands import lifecycle
from chelian.services.commands.keys import PlatformKey
from chelian.services.commands.lifecycle import CommandService, is_autocommit
from chelian.services.commands.notify import POLL_S, SAFETY_POLL_S
from chelian.services.commands.wakeups import CHANNEL
from chelian.storage.async_pool import AsyncPools, conninfo
from chelian.storage.db import is_postgres, now_ms
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories import vehicles
from chelian.storage.repositories.commands import Car
from chelian.storage.tables import command_counters
from tests.factories import make_car, make_owner


@pytest.fixture
def world(engine, tmp_path):
    owner = make_owner(engine, "rq@example.com")
    creds = make_car(engine, owner)
    with engine.connect() as conn:
        vehicle = vehicles.by_vin(conn, creds.vin)
    token = token_digest(log_in(engine, "rq@example.com", "password123", 3600))
    service = CommandService(engine, PlatformKey.load_or_create(tmp_path / "cloud"))
    return service, vehicle, owner, token


def counter(engine, vehicle_id: int) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(command_counters.c.counter)
                            .where(command_counters.c.vehicle_id == vehicle_id)).scalar()


def test_request_checks_the_caller_and_a_repeat_burns_no_counter(world, engine):
    service, vehicle, owner, token = world
    car, first, created = service.request(token, vehicle.vin.lower(), "lock", {}, idempotency_key="k1")
    assert (car.id, car.vin, created) == (vehicle.id, vehicle.vin, True)
    assert (first.status, first.counter, first.requested_by, first.attempts) == ("queued", 1, owner.id, 0)
    _car, again, created = service.request(token, vehicle.vin, "lock", {}, idempotency_key="k1")
    assert (again, created) == (first, False)
    assert counter(engine, vehicle.id) == 1, "the repeat was found before a counter was taken"
    with pytest.raises(ConflictError, match="k1"):
        service.request(token, vehicle.vin, "unlock", {}, idempotency_key="k1")
    _car, other, created = service.request(token, vehicle.vin, "lock", {})
    assert created and other.counter == 2 and other.id != first.id


def test_request_refuses_strangers_before_judging_their_request(world, engine):
    service, vehicle, _owner, token = world
    stranger_car = make_car(engine, make_owner(engine))
    with pytest.raises(AuthError):
        service.request("not-a-token", vehicle.vin, "lock", {})
    with pytest.raises(AuthError):  # who asks first: 401 before 400
        service.request("not-a-token", vehicle.vin, "no_such_type", {})
    with pytest.raises(NotFoundError, match=stranger_car.vin):
        service.request(token, stranger_car.vin, "lock", {})
    with pytest.raises(ValidationError):
        service.request(token, vehicle.vin, "no_such_type", {})
    assert counter(engine, vehicle.id) is None, "nothing was counted for refused requests"


def test_a_command_for_an_online_car_is_inserted_sent_and_dispatched_as_such(world):
    service, vehicle, _owner, token = world
    dispatched = []
    service.dispatch = lambda cid, vin, payload, recorded=False: dispatched.append((cid, recorded))
    service.online = {vehicle.vin}.__contains__
    _car, row, _ = service.request(token, vehicle.vin, "lock", {})
    assert (row.status, row.attempts, row.sent_ms) == ("sent", 1, row.created_ms)
    assert row.last_sent_ms == row.created_ms
    assert service.get(vehicle.id, row.id) == row  # as stored
    service.online = set().__contains__
    _car, offline, _ = service.request(token, vehicle.vin, "unlock", {})
    assert (offline.status, offline.attempts, offline.sent_ms) == ("queued", 0, None)
    assert dispatched == [(row.id, True), (offline.id, False)]
    # A recorded-sent command that never went out is still due for a resend, like any sent one.
    due = service.pending(states=("sent",), sent_before_ms=now_ms() + 1)
    assert [cid for cid, _vin, _payload in due] == [row.id]


def test_the_command_engine_is_autocommit_and_transactions_still_roll_back(database_url, tmp_path):
    engine = create_engine(database_url)
    commands = command_engine(engine)
    try:
        service = CommandService(commands, PlatformKey.load_or_create(tmp_path))
        assert is_autocommit(commands) == is_postgres(engine)
        if is_postgres(engine):
            assert service.autocommit is commands
            with pytest.raises(RuntimeError), service.engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE rolled_back (x int)")
                raise RuntimeError
            with service.autocommit.connect() as conn:
                assert conn.exec_driver_sql("SELECT to_regclass('rolled_back')").scalar() is None
    finally:
        commands.dispose()
        engine.dispose()


def test_one_api_process_listens_to_nobody_and_announces_nothing(world, database_url):
    service, vehicle, owner, _token = world
    assert start_wakeups(service, 1) is None
    assert service.announce is False
    assert service.poll_s == (SAFETY_POLL_S if is_postgres(service.engine) else POLL_S)
    if not is_postgres(service.engine):
        return
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        quiet = service.create(vehicle, owner.id, "lock", {})[0]
        assert service.settle(quiet.id, "failed", reason="forced", finished_ms=now_ms())
        assert list(listener.notifies(timeout=0.3)) == []
        service.announce = True  # several API processes: every settlement is announced
        loud = service.create(vehicle, owner.id, "lock", {})[0]
        assert service.settle(loud.id, "failed", reason="forced", finished_ms=now_ms())
        heard = list(listener.notifies(timeout=2, stop_after=1))
        assert len(heard) == 1 and loud.id in heard[0].payload


def test_a_reused_command_id_is_an_integrity_error_and_the_connection_stays_usable(world):
    service, vehicle, owner, token = world
    _car, row, _ = service.request(token, vehicle.vin, "lock", {})
    values = {name: getattr(row, name) for name in (
        "id", "vehicle_id", "type", "args", "status", "signer", "kid", "counter", "requested_by",
        "request_hash", "payload", "env_hash", "created_ms", "issued_ms", "expires_ms", "attempts")}
    with service.autocommit.connect() as conn:
        with pytest.raises(IntegrityError):
            repo.insert_command_once(conn, **values, idempotency_key="fresh")
        view = repo.caller_view(conn, token, now_ms(), vehicle.vin, row.id)
    assert (view.user_id, view.vehicle, view.command) == (owner.id, Car(vehicle.id, vehicle.vin), row)


def on_the_event_loop(service, engine, steps):
    """Run `steps(service)` (a coroutine function) on one event loop, with the async pool the
    runtime gives a PostgreSQL service (none on SQLite: request_async uses worker threads);
    returns its result and how many times a worker thread was used."""
    hops = []
    real = lifecycle.run_in_threadpool

    async def counting(func, *args, **kwargs):
        hops.append(func)
        return await real(func, *args, **kwargs)

    async def run():
        service.async_pool = AsyncPools(conninfo(engine), max_size=2) if is_postgres(engine) else None
        try:
            return await steps(service)
        finally:
            if service.async_pool is not None:
                await service.async_pool.close()

    lifecycle.run_in_threadpool = counting
    try:
        return asyncio.run(run()), len(hops)
    finally:
        lifecycle.run_in_threadpool = real


def test_request_async_creates_on_the_loop_and_leaves_the_rare_cases_to_request(world, engine):
    service, vehicle, owner, token = world
    dispatched = []
    service.dispatch = lambda cid, vin, payload, recorded=False: dispatched.append((cid, recorded))
    service.online = {vehicle.vin}.__contains__

    async def new(svc):
        return await svc.request_async(token, vehicle.vin.lower(), "lock", {}, None, "k1")

    (car, first, created), hops = on_the_event_loop(service, engine, new)
    assert (car.vin, created, first.status, first.counter, first.requested_by) == \
        (vehicle.vin, True, "sent", 1, owner.id)
    assert service.get(vehicle.id, first.id) == first, "as stored"
    assert dispatched == [(first.id, True)]
    assert service.notifier.recall(first.id, (token, vehicle.vin), now_ms()) == first
    assert hops == (0 if is_postgres(engine) else 1), "a new command needs no worker thread on PostgreSQL"

    async def rare(svc):
        _car, again, repeated = await svc.request_async(token, vehicle.vin, "lock", {}, None, "k1")
        outcomes = [(again.id, repeated)]
        for args in [(token, vehicle.vin, "unlock", {}, None, "k1"),  # the key, for another request
                     (token, vehicle.vin, "no_such_type", {}, None, None),
                     ("not-a-token", vehicle.vin, "no_such_type", {}, None, None),  # who asks first
                     (token, make_car(engine, make_owner(engine)).vin, "lock", {}, None, None)]:
            try:
                await svc.request_async(*args)
            except (ConflictError, ValidationError, AuthError, NotFoundError) as exc:
                outcomes.append(type(exc).__name__)
        return outcomes

    outcomes, _hops = on_the_event_loop(service, engine, rare)
    assert outcomes == [(first.id, False), "ConflictError", "ValidationError", "AuthError", "NotFoundError"]
    assert counter(engine, vehicle.id) == 1, "neither the repeat nor the refusals took a counter"
    assert dispatched == [(first.id, True)]


def _seq_scans_of_commands(url: str) -> int:
    """Sequential scans of `commands` so far, read on a connection of its own (a fresh snapshot)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        row = conn.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'commands'").fetchone()
    return row[0]


def test_the_command_path_plans_for_the_table_as_it_is_now_not_as_it_was(world, engine, database_url):
    """A generic plan that PostgreSQL kept for a prepared statement, made while a fresh install's
    `commands` was nearly empty, settled every ack with a scan of the whole table until the next
    ANALYZE (storage/db.py: CUSTOM_PLANS)."""
    if not is_postgres(engine):
        pytest.skip("plan caching is PostgreSQL's")
    service, vehicle, owner, _token = world
    commands = command_engine(engine)
    try:
        ack = {"id": "no-such-command", "vehicle_id": vehicle.id, "env_hash": "h", "kid": "k",
               "status": "succeeded", "reason": None, "result": None, "acked_ms": 1, "car_ts_ms": 1,
               "finished_ms": 1}
        service.create(vehicle, owner.id, "lock", {})
        with engine.connect() as small:  # autovacuum's first ANALYZE comes when a table is this small
            small.exec_driver_sql("ANALYZE commands")
        with commands.connect() as conn:
            # psycopg prepares on the 6th run, and PostgreSQL tries 5 custom plans before it
            # settles on a generic one: 15 runs would leave a generic plan made for a small table
            for _ in range(15):
                repo.settle_many(conn, [ack], ["sent"])
            with engine.begin() as grow:  # 4 000 more rows, copies of that one under new ids
                grow.exec_driver_sql(
                    "INSERT INTO commands SELECT (jsonb_populate_record(c, jsonb_build_object("
                    "'id', c.id || '-' || g))).* FROM commands AS c, generate_series(1, 4000) AS g")
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")  # this backend's counts so far
            before = _seq_scans_of_commands(database_url)
            for _ in range(20):
                assert repo.settle_many(conn, [ack], ["sent"]) == {}
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
            assert _seq_scans_of_commands(database_url) == before, "an ack read the whole table"
    finally:
        commands.dispose()
