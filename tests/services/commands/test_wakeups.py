"""Cross-process wake-ups on real PostgreSQL: a waiter here, the settling code in another process.

Waiters poll only every 60 s in these tests, and wait at most 20 s: a waiter that returns the
final status was woken by the other process's NOTIFY, not by a re-read.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chelian.agent.commands import CommandExecutor
from chelian.agent.keystore import Keystore
from chelian.services.commands.keys import PlatformKey, pin_agent_key
from chelian.services.commands.lifecycle import CommandService
from chelian.services.commands.wakeups import CHANNEL, MAX_PAYLOAD_BYTES, Listener, payload
from chelian.storage.db import make_engine, now_ms
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories import vehicles
from tests.agent.fake_actuators import FakeActuators
from tests.conftest import drop_pg_database, new_pg_database
from tests.factories import make_car, make_owner

ROOT = Path(__file__).resolve().parents[3]

# Run in a process of its own: its CommandService has its own notifier, as another API
# worker's would. Settles one command by a car's ack (hex) or, without one, by force.
OTHER_PROCESS = """
import sys
from pathlib import Path
from chelian.services.commands.acks import handle_acks
from chelian.services.commands.keys import PlatformKey
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.db import make_engine, now_ms
url, key_dir, vin, command_id, ack = sys.argv[1:]
engine = make_engine(url)
service = CommandService(engine, PlatformKey.load_or_create(Path(key_dir)))
if ack:
    assert handle_acks(service, [(vin, bytes.fromhex(ack), now_ms())])[0].command_id == command_id
else:
    assert service.settle(command_id, "failed", reason="forced", finished_ms=now_ms())
engine.dispose()
"""


@pytest.fixture
def pg_url(pg_template):
    name, url = new_pg_database(pg_template)
    yield url
    drop_pg_database(name)


@pytest.fixture
def world(pg_url, tmp_path):
    engine = make_engine(pg_url)
    owner = make_owner(engine)
    creds = make_car(engine, owner)
    with engine.connect() as conn:
        vehicle = vehicles.by_vin(conn, creds.vin)
    service = CommandService(engine, PlatformKey.load_or_create(tmp_path / "cloud"))
    service.poll_s = 60.0
    car = CommandExecutor(creds.vin, Keystore.open(tmp_path / "car.json", creds.vin,
                                                   platform_key=service.platform_key.public), FakeActuators())
    woken: list[str] = []
    notify = service.notifier.notify
    service.notifier.notify = lambda ids, changes=None: (woken.extend(ids), notify(ids, changes))  # type: ignore[method-assign]
    with Listener(engine, service.notifier) as listener:
        assert listener.listening.is_set()
        woken.clear()  # the listener's "re-read everything" on connect
        yield pg_url, tmp_path / "cloud", service, vehicle, owner, car, woken
    engine.dispose()


def settle_elsewhere(url: str, key_dir: Path, vin: str, command_id: str, ack: bytes | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, url, str(key_dir), vin, command_id,
                    ack.hex() if ack else ""], check=True, env=env, cwd=ROOT, timeout=60)


def reader(service: CommandService, vehicle_id: int, command_id: str, before_first_return=None):
    calls = []

    def read():
        row = service.get(vehicle_id, command_id)
        calls.append(row.status)
        if len(calls) == 1 and before_first_return is not None:
            before_first_return()
        return row

    return read, calls


def test_an_ack_settled_in_another_process_wakes_the_waiter_with_the_outcome(world):
    url, key_dir, service, vehicle, owner, car, woken = world
    row, _ = service.create(vehicle, owner.id, "locate", {})
    service.mark_sent([row.id])
    ack = car.handle(row.payload)
    read, calls = reader(service, vehicle.id, row.id)

    async def scenario():
        waiting = asyncio.create_task(service.wait(row.id, 20, read))
        while not calls:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(settle_elsewhere, url, key_dir, vehicle.vin, row.id, ack)
        return await waiting

    done = asyncio.run(scenario())
    assert done.status == "succeeded" and done.result["lat"] == 42.5063
    assert calls == ["sent"]  # the notification carried the outcome: no second read
    assert woken == [row.id]


def test_a_forced_settle_elsewhere_wakes_the_waiter_who_re_reads(world):
    url, key_dir, service, vehicle, owner, _car, woken = world
    row, _ = service.create(vehicle, owner.id, "lock", {})
    read, calls = reader(service, vehicle.id, row.id)

    async def scenario():
        waiting = asyncio.create_task(service.wait(row.id, 20, read))
        while not calls:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(settle_elsewhere, url, key_dir, vehicle.vin, row.id)
        return await waiting

    done = asyncio.run(scenario())
    assert (done.status, done.reason) == ("failed", "forced")
    assert calls == ["queued", "failed"]
    assert woken == [row.id]  # by the other process's NOTIFY, not the end of wait_s


def test_a_send_by_another_process_makes_this_one_forget_the_command_it_remembered(world):
    _url, key_dir, service, vehicle, owner, _car, woken = world
    row, _ = service.create(vehicle, owner.id, "lock", {})
    asker = ("the caller's token digest", vehicle.vin)
    service.notifier.remember(row.id, asker, row, row.expires_ms, now_ms())
    other_process = CommandService(service.engine, PlatformKey.load_or_create(key_dir))
    assert other_process.mark_sent([row.id]) == [row.id]
    deadline = time.monotonic() + 10
    while service.notifier.recall(row.id, asker, now_ms()) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.notifier.recall(row.id, asker, now_ms()) is None, "its attempts changed elsewhere"
    assert woken == [row.id]


def test_a_settle_committed_before_the_waiter_registers_is_not_missed(world):
    url, key_dir, service, vehicle, owner, car, _woken = world
    row, _ = service.create(vehicle, owner.id, "unlock", {})
    service.mark_sent([row.id])
    settle_elsewhere(url, key_dir, vehicle.vin, row.id, car.handle(row.payload))
    time.sleep(0.2)  # its NOTIFY has come and gone: nobody was watching
    read, calls = reader(service, vehicle.id, row.id)
    assert asyncio.run(service.wait(row.id, 20, read)).status == "succeeded"
    assert calls == ["succeeded"]


def test_a_notification_during_the_first_read_still_wakes_the_waiter(world):
    """Registered, then read a stale row while the other process settled: the NOTIFY that
    came in between is kept by the watch."""
    url, key_dir, service, vehicle, owner, car, woken = world
    row, _ = service.create(vehicle, owner.id, "lock", {})
    service.mark_sent([row.id])
    ack = car.handle(row.payload)

    def settle_then_linger():
        settle_elsewhere(url, key_dir, vehicle.vin, row.id, ack)
        time.sleep(0.3)  # let the notification arrive before the stale row is returned

    read, calls = reader(service, vehicle.id, row.id, settle_then_linger)
    assert asyncio.run(service.wait(row.id, 20, read)).status == "succeeded"
    assert calls == ["sent"] and woken == [row.id]


def test_an_outcome_too_big_for_notify_wakes_the_waiter_to_re_read(world):
    _url, _key_dir, service, vehicle, owner, car, woken = world
    kid = pin_agent_key(service.engine, vehicle.id, car.agent_public_key).kid  # acks settle only if pinned
    row, _ = service.create(vehicle, owner.id, "locate", {})
    service.mark_sent([row.id])
    big = {"blob": "x" * 10_000}
    assert '"c":null' in payload("o", row.id, {"result": big})
    read, calls = reader(service, vehicle.id, row.id)

    def settle_as_another_process():
        ack = dict(id=row.id, vehicle_id=vehicle.id, env_hash=row.env_hash, kid=kid, status="succeeded",
                   reason=None, result=big, acked_ms=now_ms(), car_ts_ms=now_ms(), finished_ms=now_ms())
        with service.autocommit.connect() as conn:
            assert repo.settle_many(conn, [ack], ("sent",), notify=(CHANNEL, "elsewhere", MAX_PAYLOAD_BYTES))

    async def scenario():
        waiting = asyncio.create_task(service.wait(row.id, 20, read))
        while not calls:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(settle_as_another_process)
        return await waiting

    done = asyncio.run(scenario())
    assert done.status == "succeeded" and done.result == big
    assert calls == ["sent", "succeeded"] and woken == [row.id]  # woken without the change: re-read
