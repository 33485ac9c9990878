"""A car's command executor on a temporary keystore, a fake body and a settable clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chelian.agent.commands import CommandExecutor
from chelian.agent.keystore import Keystore
from chelian.services.commands.envelope import Ack, Sealed, key_id, load_public, open_sealed, unwrap
from tests.agent.fake_actuators import FakeActuators
from tests.services.commands.signing import SigningKey

VIN = "1M8GDM9AXKP042788"
T0 = 1_764_083_523_000


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Car:
    executor: CommandExecutor
    body: FakeActuators
    clock: Clock
    platform: SigningKey
    owner: SigningKey
    path: Path

    def send(self, payload: bytes) -> Ack | None:
        """Deliver one command; the decoded, signature-checked ack (or None)."""
        out = self.executor.handle(payload)
        return None if out is None else self.read_ack(out)

    def read_ack(self, payload: bytes) -> Ack:
        sealed: Sealed = unwrap(payload)
        assert sealed.pub is not None and sealed.kid == key_id(sealed.pub)
        assert sealed.pub == load_public(self.executor.agent_public_key).public_bytes_raw()
        return Ack.from_body(open_sealed(sealed, load_public(self.executor.agent_public_key)))

    def reopen(self) -> Car:
        """The same car after a reboot: keystore from disk, nothing in memory."""
        store = Keystore.open(self.path, VIN)
        return Car(CommandExecutor(VIN, store, self.body, self.clock), self.body, self.clock, self.platform,
                   self.owner, self.path)


def make_car(tmp_path: Path) -> Car:
    platform, owner, clock, body = SigningKey(), SigningKey(), Clock(), FakeActuators()
    path = tmp_path / "car" / "commands.json"
    store = Keystore.open(path, VIN, platform_key=platform.public, owner_key=owner.public)
    return Car(CommandExecutor(VIN, store, body, clock), body, clock, platform, owner, path)
