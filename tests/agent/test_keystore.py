"""The keystore's one synced write per command, and what a crash or a power cut can leave behind.

A power cut keeps what was synced and may lose anything after it; `power_cut()` builds that
worst case (the journal cut back to its length at the last fdatasync) in another directory,
and the car reboots from it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from chelian.agent.commands import CommandExecutor
from chelian.agent.keystore import FORMAT, Keystore
from chelian.services.commands import catalog
from tests.services.commands.car import T0, VIN, Car, make_car


class Synced(dict[str, int]):
    """File path -> its size at its last fdatasync (what a power cut cannot take away)."""

    calls = 0


@pytest.fixture
def synced(monkeypatch) -> Synced:
    sizes = Synced()
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        sizes[os.readlink(f"/proc/self/fd/{fd}")] = os.fstat(fd).st_size
        sizes.calls += 1

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return sizes


@pytest.fixture
def car(tmp_path, synced):
    return make_car(tmp_path)


def power_cut(car: Car, synced: Synced, where: Path) -> Car:
    """The car after losing power now: the snapshot (always synced) and the synced journal prefix."""
    where.mkdir()
    path = where / car.path.name
    shutil.copy(car.path, path)
    journal = car.executor.keystore.journal_path
    path.with_name(journal.name).write_bytes(journal.read_bytes()[:synced.get(str(journal), 0)])
    store = Keystore.open(path, VIN)
    return Car(CommandExecutor(VIN, store, car.body, car.clock), car.body, car.clock, car.platform, car.owner,
               path)


def test_one_sync_per_command_and_it_comes_before_the_car_acts(car, synced, tmp_path):
    journal = str(car.executor.keystore.journal_path)
    synced_when_acting: list[int | None] = []
    lock = car.body.lock
    car.body.lock = lambda: (synced_when_acting.append(synced.get(journal)), lock())[1]  # type: ignore[method-assign]
    synced.clear()
    synced.calls = 0
    payload = car.platform.signed(VIN, "lock", iat=T0)
    assert car.send(payload).status == "succeeded"
    assert synced.calls == 1, "one synced write per command, not two"
    assert synced_when_acting == [synced[journal]] and synced[journal] > 0
    rebooted = power_cut(car, synced, tmp_path / "cut")
    assert rebooted.send(payload).reason == catalog.REPLAYED, "the counter was on disk when the car acted"
    assert car.body.calls == [("lock", None)]


def test_a_power_cut_before_the_next_sync_loses_only_the_answer(car, synced, tmp_path):
    payload = car.platform.signed(VIN, "honk_flash", {"seconds": 2}, iat=T0)
    car.send(payload)
    rebooted = power_cut(car, synced, tmp_path / "cut")
    ack = rebooted.send(payload)
    assert ack.reason == catalog.REPLAYED, "the resend is refused, never acted on again"
    assert car.body.calls == [("honk_flash", 2.0)]


def test_the_next_commands_sync_carries_the_earlier_answer(car, synced, tmp_path):
    first = car.platform.signed(VIN, "lock", iat=T0)
    answer = car.executor.handle(first)
    car.send(car.platform.signed(VIN, "unlock", iat=T0))
    rebooted = power_cut(car, synced, tmp_path / "cut")
    assert rebooted.executor.handle(first) == answer


def test_an_agent_crash_loses_nothing(car):
    payload = car.platform.signed(VIN, "lock", iat=T0)
    answer = car.executor.handle(payload)
    rebooted = car.reopen()  # the files as the page cache has them: the process died, the kernel did not
    assert rebooted.executor.handle(payload) == answer
    assert car.body.calls == [("lock", None)]


def test_a_revocation_is_on_disk_before_its_ack_leaves(car, synced, tmp_path):
    ack = car.send(car.owner.signed(VIN, "revoke_key", {"kid": car.platform.kid}, iat=T0))
    assert ack.status == "succeeded"
    rebooted = power_cut(car, synced, tmp_path / "cut")
    assert rebooted.send(car.platform.signed(VIN, "lock", iat=T0)).reason == catalog.KEY_NOT_VALID_NOW


def test_a_torn_journal_line_and_all_after_it_are_ignored(car):
    payloads = [car.platform.signed(VIN, "lock", iat=T0) for _ in range(3)]
    for payload in payloads[:2]:
        car.send(payload)
    journal = car.executor.keystore.journal_path
    lines = journal.read_bytes().split(b"\n")
    torn = b"\n".join(lines[:2]) + b"\n" + lines[2][:-7] + b"\n" + lines[3] + b"\n"  # a bad CRC mid-file
    journal.write_bytes(torn + b'0badc0de {"s": 99, "ctr"')
    rebooted = car.reopen()
    window = rebooted.executor.keystore.entry(car.platform.kid).window
    assert window.hi == 1, "the first counter survives; the line after the corrupt one is not trusted"
    assert journal.read_bytes() == b"", "the journal was folded into a snapshot"
    assert rebooted.send(payloads[0]).status == "succeeded", "its answer survived too"
    assert rebooted.send(payloads[2]).status == "succeeded"
    assert rebooted.reopen().send(payloads[2]).status == "succeeded", "answered again from memory"


def test_lines_already_in_the_snapshot_are_skipped(car):
    car.send(car.platform.signed(VIN, "lock", iat=T0))
    journal = car.executor.keystore.journal_path
    old = journal.read_bytes()
    car.executor.keystore.save()  # a crash right after the snapshot, before the journal was emptied:
    journal.write_bytes(old)
    car.send(car.platform.signed(VIN, "unlock", iat=T0))
    rebooted = car.reopen()
    window = rebooted.executor.keystore.entry(car.platform.kid).window
    assert (window.hi, window.seen) == (2, 0b11)
    assert len(rebooted.executor.keystore.recent) == 2


def test_a_format_1_keystore_is_read_and_rewritten(car):
    car.send(car.platform.signed(VIN, "lock", iat=T0))
    store = car.executor.keystore
    store.save()
    obj = json.loads(car.path.read_text())
    del obj["seq"]
    car.path.write_text(json.dumps(obj | {"format": 1}))
    store.journal_path.unlink()
    rebooted = car.reopen()
    assert rebooted.executor.keystore.entry(car.platform.kid).window.hi == 1
    assert json.loads(car.path.read_text())["format"] == FORMAT
    assert rebooted.send(car.platform.signed(VIN, "lock", ctr=1, iat=T0)).reason == catalog.REPLAYED


def test_the_journal_is_folded_into_a_snapshot_when_it_grows(car, monkeypatch):
    monkeypatch.setattr("chelian.agent.keystore.JOURNAL_MAX_BYTES", 2_000)
    for _ in range(10):
        car.send(car.platform.signed(VIN, "lock", iat=T0))
    assert car.executor.keystore.journal_path.stat().st_size < 4_000
    assert car.reopen().executor.keystore.entry(car.platform.kid).window.hi == 10
    assert oct(car.executor.keystore.journal_path.stat().st_mode & 0o777) == "0o600"
