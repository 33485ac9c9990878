"""Per-(car, key) counters never repeat, also under concurrent transactions (threads, both databases)."""

from __future__ import annotations

import threading

from sqlalchemy import select

from chelian.services.commands.keys import PlatformKey
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories import vehicles
from chelian.storage.tables import commands
from tests.factories import make_car, make_owner

THREADS, EACH = 8, 25


def run_threads(target) -> list[BaseException]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(THREADS)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    return errors


def test_next_counter_is_atomic_under_concurrent_transactions(engine):
    car = make_car(engine, make_owner(engine))
    with engine.connect() as conn:
        vid = vehicles.by_vin(conn, car.vin).id
    seen: list[int] = []
    lock = threading.Lock()

    def bump() -> None:
        for _ in range(EACH):
            with engine.begin() as conn:
                value = repo.next_counter(conn, vid, "k" * 22)
            with lock:
                seen.append(value)

    assert run_threads(bump) == []
    assert sorted(seen) == list(range(1, THREADS * EACH + 1))
    with engine.begin() as conn:
        assert repo.next_counter(conn, vid, "other-key-000000000000") == 1, "each key counts on its own"


def test_concurrent_commands_for_one_car_get_distinct_counters(engine, tmp_path):
    owner = make_owner(engine)
    car = make_car(engine, owner)
    with engine.connect() as conn:
        vehicle = vehicles.by_vin(conn, car.vin)
    service = CommandService(engine, PlatformKey.load_or_create(tmp_path))

    def send() -> None:
        for _ in range(EACH // 5):
            service.create(vehicle, owner.id, "honk_flash", {})

    assert run_threads(send) == []
    with engine.connect() as conn:
        counters = list(conn.execute(select(commands.c.counter)).scalars())
    assert sorted(counters) == list(range(1, THREADS * (EACH // 5) + 1))
