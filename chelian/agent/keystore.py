"""The car's command keystore: whitelist, replay windows, recent answers and its own signing key.

One JSON file (mode 0600), rewritten atomically (temporary file, fsync, rename) on every
change. A car acts on a command only after the command's counter is on disk, so a crash or a
power cut between "acted" and "remembered" can never make the same envelope act twice.

Created on first open from the provisioning config: the platform's public key (role
`platform`) and optionally the owner's device key (role `owner`). Later opens ignore those
seeds - the whitelist then belongs to the owner's `enrol_key`/`revoke_key` commands, and
re-seeding would silently undo a revocation.

Revoked keys keep their replay window: re-enrolling a key continues its counter, so envelopes
captured before the revocation stay dead.

Example:
    store = Keystore.open(Path("/var/lib/chelian/commands.json"), vin, platform_key="b64u...")
    store.agent_key                               # the car's Ed25519 private key
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chelian.services.commands.catalog import OWNER, PLATFORM
from chelian.services.commands.envelope import b64u, key_id, load_public, unb64u

FORMAT: Final = 1
WINDOW: Final = 64
"""Counters up to this far behind the highest one seen are still accepted once (late delivery)."""
RECENT: Final = 32
"""Answers kept for resent envelopes, so a resend gets the original ack instead of `replayed`."""


@dataclass(slots=True)
class ReplayWindow:
    """RFC 4303-style anti-replay: highest counter seen plus a bitmap of the WINDOW below it.

    Bit i of `seen` set means counter `hi - i` was used; `hi` itself is bit 0.
    """

    hi: int = 0
    seen: int = 0

    def fresh(self, ctr: int) -> bool:
        if ctr > self.hi:
            return True
        behind = self.hi - ctr
        return behind < WINDOW and not (self.seen >> behind) & 1

    def mark(self, ctr: int) -> None:
        if ctr > self.hi:
            shift = ctr - self.hi
            self.seen = ((self.seen << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.hi = ctr
        else:
            self.seen |= 1 << (self.hi - ctr)


@dataclass(slots=True)
class KeyEntry:
    pub: bytes
    role: str
    nbf: int | None = None
    exp: int | None = None
    revoked_ms: int | None = None
    window: ReplayWindow = field(default_factory=ReplayWindow)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.pub)

    def valid_at(self, now_ms: int) -> bool:
        return (self.revoked_ms is None and (self.nbf is None or self.nbf <= now_ms)
                and (self.exp is None or now_ms < self.exp))

    def to_json(self) -> dict[str, Any]:
        return {"pub": b64u(self.pub), "role": self.role, "nbf": self.nbf, "exp": self.exp,
                "revoked_ms": self.revoked_ms, "hi": self.window.hi, "seen": self.window.seen}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> KeyEntry:
        return cls(unb64u(obj["pub"]), obj["role"], obj.get("nbf"), obj.get("exp"), obj.get("revoked_ms"),
                   ReplayWindow(obj.get("hi", 0), obj.get("seen", 0)))


class Keystore:
    def __init__(self, path: Path, vin: str, agent_key: Ed25519PrivateKey, keys: dict[str, KeyEntry],
                 recent: OrderedDict[str, bytes], waiting: dict[str, bytes] | None = None) -> None:
        self.path = path
        self.vin = vin
        self.agent_key = agent_key
        self.keys = keys
        self.recent = recent
        self.waiting = waiting if waiting is not None else {}
        """Verified envelopes still waiting to act (immobilise until stationary), by hash: a
        reboot resumes the wait instead of answering the cloud's resend with `replayed`."""
        self.tracking: dict[str, int] | None = None
        """The running `set_tracking` ({"interval_ms", "until_ms"}), so a reboot keeps tracking."""
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, vin: str, *, platform_key: str | None = None,
             owner_key: str | None = None) -> Keystore:
        """Load the keystore, or create it from the provisioning seeds (public keys, base64url)."""
        path = Path(path)
        if path.exists():
            return cls._load(path, vin)
        if platform_key is None and owner_key is None:
            raise ValueError(f"{path} does not exist and no platform or owner key was given to create it")
        keys: dict[str, KeyEntry] = {}
        for text, role in ((platform_key, PLATFORM), (owner_key, OWNER)):
            if text is not None:
                raw = load_public(text).public_bytes_raw()
                keys[key_id(raw)] = KeyEntry(raw, role)
        store = cls(path, vin, Ed25519PrivateKey.generate(), keys, OrderedDict())
        store.save()
        return store

    @classmethod
    def _load(cls, path: Path, vin: str) -> Keystore:
        obj = json.loads(path.read_text())
        if obj.get("format") != FORMAT or obj.get("vin") != vin:
            raise ValueError(f"{path} is not a format-{FORMAT} command keystore for {vin}")
        agent_key = Ed25519PrivateKey.from_private_bytes(unb64u(obj["agent_key"]))
        keys = {kid: KeyEntry.from_json(e) for kid, e in obj["keys"].items()}
        recent = OrderedDict((h, ack.encode()) for h, ack in obj.get("recent", []))
        waiting = {h: payload.encode() for h, payload in obj.get("waiting", {}).items()}
        store = cls(path, vin, agent_key, keys, recent, waiting)
        store.tracking = obj.get("tracking")
        return store

    # --- whitelist ------------------------------------------------------------------

    def entry(self, kid: str) -> KeyEntry | None:
        return self.keys.get(kid)

    def enrol(self, pub: bytes, role: str, nbf: int | None, exp: int | None) -> str:
        """Add a key, or give an existing one a new role/window (its replay window stays)."""
        kid = key_id(pub)
        old = self.keys.get(kid)
        self.keys[kid] = KeyEntry(pub, role, nbf, exp, None, old.window if old else ReplayWindow())
        return kid

    def revoke(self, kid: str, now_ms: int) -> bool:
        entry = self.keys.get(kid)
        if entry is None or entry.revoked_ms is not None:
            return False
        entry.revoked_ms = now_ms
        return True

    # --- answers to resends ---------------------------------------------------------

    def answer_for(self, envelope_hash: str) -> bytes | None:
        return self.recent.get(envelope_hash)

    def remember(self, envelope_hash: str, ack: bytes) -> None:
        self.recent[envelope_hash] = ack
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    # --- persistence ----------------------------------------------------------------

    def save(self) -> None:
        """Atomically replace the file: a reader (or a crash) sees the old or the new state."""
        obj = {"format": FORMAT, "vin": self.vin,
               "agent_key": b64u(self.agent_key.private_bytes_raw()),
               "keys": {kid: e.to_json() for kid, e in self.keys.items()},
               "recent": [[h, ack.decode()] for h, ack in self.recent.items()],
               "waiting": {h: payload.decode() for h, payload in self.waiting.items()},
               "tracking": self.tracking}
        data = json.dumps(obj, separators=(",", ":")).encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
