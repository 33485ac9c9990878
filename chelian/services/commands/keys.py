"""Keys on the cloud side: the platform's signing key, people's device keys, cars' ack keys.

The platform key is an Ed25519 private key in `data_dir/command-signing-key.pem` (PKCS#8,
mode 0600), created on first use, loaded only by the command service. Its public half is also
written to `command-signing-key.pub` (base64url), which is what anyone else reads: the API
shows it and provisioning hands it to cars, without ever loading the private key. A key file
that group or others may read is refused (as ssh does): a leaked platform key lets its holder
do everything the `platform` role may do to every car.

Car keys are pinned on first use (see acks.py); an owner may pin one by hand (stronger: no
first-use window for a forged announcement) or unpin it when a head unit is replaced. The
relay keeps the pins it has read in a `PinnedKeys` cache; the settling statement re-checks
the pin, so an unpin in any process takes effect on the next ack all the same.

Example:
    key = PlatformKey.load_or_create(settings.data_dir)
    key.kid, key.public        # what the car's whitelist holds
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine

from chelian.errors import ConfigError, NotFoundError, ValidationError
from chelian.services.commands.envelope import EnvelopeError, Sealed, Signer, b64u, key_id, load_public
from chelian.storage.db import now_ms
from chelian.storage.repositories import keys as key_repo
from chelian.storage.repositories.keys import AgentKey, DeviceKey

PRIVATE_FILE: Final = "command-signing-key.pem"
PUBLIC_FILE: Final = "command-signing-key.pub"
PINNED_BY_OWNER: Final = "owner"
PINNED_ON_FIRST_USE: Final = "first_use"
PINNED_CACHE_MAX: Final = 100_000
"""Cars whose pinned key one process keeps (a fleet's worth); past it the cache starts afresh."""


@dataclass(frozen=True, slots=True)
class PlatformKey:
    private: Ed25519PrivateKey = field(repr=False)
    signer: Signer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signer", Signer.of(self.private))

    @property
    def kid(self) -> str:
        return self.signer.kid

    @property
    def public(self) -> str:
        return b64u(self.signer.pub)

    def seal(self, body: dict[str, Any], id_hint: str) -> Sealed:
        return self.signer.seal(body, id_hint=id_hint)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> PlatformKey:
        path = Path(data_dir) / PRIVATE_FILE
        if not path.exists():
            _create(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not an unencrypted PKCS#8 PEM private key: {exc}") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError(f"{path} holds a {type(private).__name__}, not an Ed25519 key")
        key = cls(private)
        public = path.with_name(PUBLIC_FILE)
        if not public.exists() or public.read_text().strip() != key.public:
            public.write_text(key.public + "\n")
        return key


def _create(path: Path) -> None:
    """Write a new key to a private temporary file and link it into place: with several
    processes starting at once exactly one key wins and nobody reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def platform_public_key(data_dir: Path) -> str | None:
    """The platform's public key (base64url) without touching the private key; None before first start."""
    try:
        return (Path(data_dir) / PUBLIC_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def checked_public_key(text: str) -> tuple[str, str]:
    """(kid, public key) for a base64url Ed25519 public key; ValidationError with the reason."""
    try:
        raw = load_public(text.strip()).public_bytes_raw()
    except EnvelopeError as exc:
        raise ValidationError("public_key must be a base64url (no padding) raw 32-byte Ed25519 key: "
                              f"{exc.detail}") from None
    return key_id(raw), b64u(raw)


@dataclass(frozen=True, slots=True)
class Pinned:
    vehicle_id: int
    key: AgentKey
    public: Ed25519PublicKey = field(repr=False)


class PinnedKeys:
    """VIN -> the car's id and pinned key, as this process last read them (a hint, not the truth).

    Reading the pin for every batch of acks cost a round trip and ~5% of the API process's CPU
    per ack. A stale entry is harmless: an ack signed by another key than the cached one makes
    the caller re-read the pin (the owner may have pinned a new key), and one signed by the
    cached key settles only if that key is still pinned (commands.settle_many checks it in the
    same statement); otherwise the caller forgets the entry and re-reads.

    Example:
        cache.put(vin, vehicle_id, agent_key)
        cache.get(vin)            # Pinned(vehicle_id, key, public) or None
        cache.forget(vin)
    """

    def __init__(self, max_entries: int = PINNED_CACHE_MAX) -> None:
        self.max_entries = max_entries
        self._by_vin: dict[str, Pinned] = {}

    def get(self, vin: str) -> Pinned | None:
        return self._by_vin.get(vin)

    def put(self, vin: str, vehicle_id: int, key: AgentKey) -> Pinned:
        if len(self._by_vin) >= self.max_entries:
            self._by_vin.clear()
        pinned = self._by_vin[vin] = Pinned(vehicle_id, key, load_public(key.public_key))
        return pinned

    def forget(self, vin: str) -> None:
        self._by_vin.pop(vin, None)


# --- people's device keys --------------------------------------------------------------


def register_device_key(engine: Engine, user_id: int, public_key: str, name: str) -> DeviceKey:
    kid, public = checked_public_key(public_key)
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise ValidationError("name must be 1-64 characters")
    with engine.begin() as conn:
        return key_repo.add_device_key(conn, kid=kid, public_key=public, user_id=user_id, name=name,
                                       created_ms=now_ms())


def device_keys(engine: Engine, user_id: int) -> list[DeviceKey]:
    with engine.connect() as conn:
        return key_repo.device_keys_for(conn, user_id)


def revoke_device_key(engine: Engine, user_id: int, kid: str) -> None:
    """The cloud stops relaying envelopes signed by it; the car's whitelist needs a revoke_key."""
    with engine.begin() as conn:
        if not key_repo.revoke_device_key(conn, user_id, kid, now_ms()):
            raise NotFoundError(f"no active key {kid} in your account")


# --- cars' own keys --------------------------------------------------------------------


def agent_key(engine: Engine, vehicle_id: int) -> AgentKey | None:
    with engine.connect() as conn:
        return key_repo.agent_key(conn, vehicle_id)


def pin_agent_key(engine: Engine, vehicle_id: int, public_key: str) -> AgentKey:
    """The owner pins the key their car shows (replacing any first-use pin)."""
    kid, public = checked_public_key(public_key)
    with engine.begin() as conn:
        key_repo.unpin_agent_key(conn, vehicle_id)
        return key_repo.pin_agent_key(conn, vehicle_id, kid, public, now_ms(), PINNED_BY_OWNER)


def unpin_agent_key(engine: Engine, vehicle_id: int) -> None:
    """Forget the car's key: the next announcement or ack pins a new one (a replaced head unit)."""
    with engine.begin() as conn:
        if not key_repo.unpin_agent_key(conn, vehicle_id):
            raise NotFoundError("no key is pinned for this car")
