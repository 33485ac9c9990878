"""Acks on the cloud: first-use pinning, batches settled in one go, and every way an ack is ignored."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

from chelian.agent.commands import CommandExecutor
from chelian.agent.keystore import Keystore
from chelian.services.commands.acks import handle_acks
from chelian.services.commands.envelope import Ack, seal
from chelian.services.commands.keys import PlatformKey, agent_key, pin_agent_key, unpin_agent_key
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.db import now_ms
from chelian.storage.repositories import keys as key_repo
from chelian.storage.repositories import vehicles
from tests.agent.fake_actuators import FakeActuators
from tests.factories import make_car, make_owner


@pytest.fixture
def setup(engine, tmp_path):
    owner = make_owner(engine)
    creds = make_car(engine, owner)
    with engine.connect() as conn:
        vehicle = vehicles.by_vin(conn, creds.vin)
    service = CommandService(engine, PlatformKey.load_or_create(tmp_path / "cloud"))
    store = Keystore.open(tmp_path / "car.json", creds.vin, platform_key=service.platform_key.public)
    car = CommandExecutor(creds.vin, store, FakeActuators())
    return service, vehicle, owner, car


def _status(service, vehicle, command_id):
    return service.get(vehicle.id, command_id).status


def test_a_batch_pins_the_key_settles_each_command_once_and_ignores_the_rest(setup):
    service, vehicle, owner, car = setup
    vin = vehicle.vin
    rows = [service.create(vehicle, owner.id, t, {})[0] for t in ("lock", "unlock", "locate")]
    service.mark_sent([r.id for r in rows])
    acks = [car.handle(r.payload) for r in rows]
    impostor = seal(Ed25519PrivateKey.generate(), Ack(rows[2].id, vin, rows[2].env_hash, "failed", "x", {},
                                                      now_ms()).body(), with_pub=True).wire()
    wrong_hash = seal(car.keystore.agent_key, Ack(rows[2].id, vin, "h" * 43, "rejected", "replayed", {},
                                                  now_ms()).body(), with_pub=True).wire()
    unknown = seal(car.keystore.agent_key, Ack("f" * 32, vin, "h" * 43, "succeeded", None, {},
                                               now_ms()).body(), with_pub=True).wire()
    batch = [car.announcement(), acks[0], acks[1], acks[1], impostor, wrong_hash, unknown, b"{oops", acks[2]]
    outcomes = handle_acks(service, [(vin, payload, now_ms()) for payload in batch])
    assert [(o.command_id, o.ignored) for o in outcomes] == [
        (None, None),  # announcement: pinned
        (rows[0].id, None), (rows[1].id, None),
        (None, None),  # the same ack twice: a repeat
        (None, "key_mismatch"), (None, "hash_mismatch"), (None, "unknown_command"), (None, "malformed"),
        (rows[2].id, None),
    ]
    assert [_status(service, vehicle, r.id) for r in rows] == ["succeeded"] * 3
    located = service.get(vehicle.id, rows[2].id)
    assert located.result["lat"] == 42.5063 and located.acked_ms >= located.sent_ms
    with service.engine.connect() as conn:
        pinned = key_repo.agent_key(conn, vehicle.id)
    assert (pinned.public_key, pinned.how) == (car.agent_public_key, "first_use")


def test_an_ack_from_an_unknown_car_or_for_another_car_is_ignored(setup, engine):
    service, vehicle, owner, car = setup
    row = service.create(vehicle, owner.id, "lock", {})[0]
    ack = car.handle(row.payload)
    other = make_car(engine, owner)
    [unknown_car, wrong_topic] = handle_acks(service, [("WVWZZZ1JZ3W386752", ack, now_ms()),
                                                       (other.vin, ack, now_ms())])
    assert unknown_car.ignored == "unknown_vehicle" and wrong_topic.ignored == "wrong_vin"
    assert _status(service, vehicle, row.id) == "queued"


def test_a_late_ack_overrides_expired(setup):
    service, vehicle, owner, car = setup
    row = service.create(vehicle, owner.id, "lock", {}, expires_in_s=1)[0]
    ack = car.handle(row.payload)
    service.clock = lambda: now_ms() + 60_000
    assert service.expire_due() == [row.id]
    [outcome] = handle_acks(service, [(vehicle.vin, ack, now_ms())])
    assert outcome.command_id == row.id and _status(service, vehicle, row.id) == "succeeded"


def _new_head_unit(service, vehicle, path):
    store = Keystore.open(path, vehicle.vin, platform_key=service.platform_key.public)
    return CommandExecutor(vehicle.vin, store, FakeActuators())


def _statements(engine):
    """SQL statements run on `engine` while the returned list is alive (appended as they run)."""
    ran: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: ran.append(sql))
    return ran


def test_a_cached_pin_settles_an_ack_in_one_statement(setup):
    service, vehicle, owner, car = setup
    first, second = (service.create(vehicle, owner.id, t, {})[0] for t in ("lock", "unlock"))
    [settled] = handle_acks(service, [(vehicle.vin, car.handle(first.payload), now_ms())])
    assert settled.command_id == first.id
    ack = car.handle(second.payload)
    ran = _statements(service.engine)
    assert handle_acks(service, [(vehicle.vin, ack, now_ms())])[0].command_id == second.id
    assert len(ran) == 1 and "agent_keys" in ran[0], "no pin read: the settle statement checks it"


def test_an_unpin_elsewhere_is_seen_by_the_next_ack(setup, tmp_path):
    service, vehicle, owner, car = setup
    first, second = (service.create(vehicle, owner.id, t, {})[0] for t in ("lock", "unlock"))
    handle_acks(service, [(vehicle.vin, car.announcement(), now_ms())])
    unpin_agent_key(service.engine, vehicle.id)  # another process: this one's cache still has the pin
    replaced = _new_head_unit(service, vehicle, tmp_path / "new-unit.json")
    [outcome] = handle_acks(service, [(vehicle.vin, replaced.handle(first.payload), now_ms())])
    assert outcome.command_id == first.id, "the new unit's key is pinned on first use"
    [old] = handle_acks(service, [(vehicle.vin, car.handle(second.payload), now_ms())])
    assert old.ignored == "key_mismatch" and _status(service, vehicle, second.id) == "queued"


def test_an_ack_from_the_cached_key_after_an_unpin_elsewhere_pins_it_again(setup):
    service, vehicle, owner, car = setup
    row = service.create(vehicle, owner.id, "lock", {})[0]
    handle_acks(service, [(vehicle.vin, car.announcement(), now_ms())])
    unpin_agent_key(service.engine, vehicle.id)
    [outcome] = handle_acks(service, [(vehicle.vin, car.handle(row.payload), now_ms())])
    assert outcome.command_id == row.id, "the settle saw no pin; the ack was handled again and pinned it"
    assert agent_key(service.engine, vehicle.id).public_key == car.agent_public_key


def test_an_ack_signed_by_a_key_unpinned_since_it_was_cached_does_not_settle(setup, tmp_path):
    service, vehicle, owner, car = setup
    row = service.create(vehicle, owner.id, "lock", {})[0]
    handle_acks(service, [(vehicle.vin, car.announcement(), now_ms())])
    replaced = _new_head_unit(service, vehicle, tmp_path / "new-unit.json")
    pin_agent_key(service.engine, vehicle.id, replaced.agent_public_key)  # the owner, in another process
    [outcome] = handle_acks(service, [(vehicle.vin, car.handle(row.payload), now_ms())])
    assert outcome.ignored == "key_mismatch" and _status(service, vehicle, row.id) == "queued"
    assert service.pinned_keys.get(vehicle.vin).key.public_key == replaced.agent_public_key


def test_an_owners_new_pin_is_read_when_an_ack_shows_another_key(setup, tmp_path):
    service, vehicle, owner, car = setup
    row = service.create(vehicle, owner.id, "lock", {})[0]
    handle_acks(service, [(vehicle.vin, car.announcement(), now_ms())])
    replaced = _new_head_unit(service, vehicle, tmp_path / "new-unit.json")
    pin_agent_key(service.engine, vehicle.id, replaced.agent_public_key)
    [outcome] = handle_acks(service, [(vehicle.vin, replaced.handle(row.payload), now_ms())])
    assert outcome.command_id == row.id
