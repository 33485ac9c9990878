"""Test keys that sign command envelopes the way the platform or an owner's device would."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chelian.services.commands.envelope import Command, b64u, key_id, seal
from chelian.storage.db import now_ms


@dataclass
class SigningKey:
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def public(self) -> str:
        return b64u(self.private.public_key().public_bytes_raw())

    @property
    def kid(self) -> str:
        return key_id(self.private)

    def command(self, vin: str, type_: str, args: dict | None = None, *, ctr: int | None = None,
                iat: int | None = None, exp: int | None = None, id_: str | None = None,
                lifetime_ms: int = 30_000) -> Command:
        iat = now_ms() if iat is None else iat
        ctr = next(self.counter) if ctr is None else ctr
        return Command(id_ or uuid.uuid4().hex, vin, type_, args or {}, ctr, iat,
                       iat + lifetime_ms if exp is None else exp)

    def sign(self, command: Command) -> bytes:
        return seal(self.private, command.body(), id_hint=command.id).wire()

    def signed(self, vin: str, type_: str, args: dict | None = None, **kwargs) -> bytes:  # type: ignore[no-untyped-def]
        return self.sign(self.command(vin, type_, args, **kwargs))
