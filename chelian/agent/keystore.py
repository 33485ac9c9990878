"""The car's command keystore: whitelist, replay windows, recent answers and its own signing key.

Two files (mode 0600): a snapshot (`commands.json`, rewritten atomically: temporary file,
fsync, rename, fsync of the directory) and a journal beside it (`commands.json.journal`)
that changes are appended to between snapshots. Per command the car writes to disk once:

* the command's counter is appended and fdatasync'ed *before* the car acts, so a crash or
  a power cut between "acted" and "remembered" can never make the same envelope act twice;
* the answer is appended without a sync: it survives the agent crashing (it is in the page
  cache) and reaches the disk with the next counter's sync. A power cut may lose it, and then
  the cloud's resend is refused as `replayed` instead of getting the original ack, as it was
  when a crash fell between the old two saves: the car still never acts twice.
* what changes the whitelist, a waiting immobilise or the tracking state is snapshotted
  (rare: each is one owner action), so the journal only ever holds counters and answers.

Every journal line carries a sequence number and a CRC: on open the lines after the
snapshot's sequence number are replayed up to the first torn or corrupt one (a power cut
mid-append; everything before it was synced, or the car never acted on it), then a new
snapshot is written and the journal emptied. The snapshot's sequence number makes a crash
between those two steps harmless (the old lines are skipped, not applied twice). This is
SQLite's WAL with synchronous=NORMAL, except that the one record that guards against replay
is synchronous=FULL.

Created on first open from the provisioning config: the platform's public key (role
`platform`) and optionally the owner's device key (role `owner`). Later opens ignore those
seeds - the whitelist then belongs to the owner's `enrol_key`/`revoke_key` commands, and
re-seeding would silently undo a revocation.

Revoked keys keep their replay window: re-enrolling a key continues its counter, so envelopes
captured before the revocation stay dead.

Example:
    store = Keystore.open(Path("/var/lib/chelian/commands.json"), vin, platform_key="b64u...")
    store.agent_key                               # the car's Ed25519 private key
    store.use_counter(kid, ctr)                   # on disk when it returns: now act
    store.remember(envelope_hash, ack)            # journaled, synced with the next counter
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chelian.services.commands.catalog import OWNER, PLATFORM
from chelian.services.commands.envelope import b64u, key_id, load_public, unb64u

FORMAT: Final = 2
"""2 added the journal: an agent that knows only format 1 would ignore it and forget counters."""
READABLE_FORMATS: Final = (1, 2)
WINDOW: Final = 64
"""Counters up to this far behind the highest one seen are still accepted once (late delivery)."""
RECENT: Final = 32
"""Answers kept for resent envelopes, so a resend gets the original ack instead of `replayed`."""
JOURNAL_MAX_BYTES: Final = 64 * 1024
"""Past this the journal is folded into a new snapshot (replay time at boot stays small)."""


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
        elif self.hi - ctr < WINDOW:
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
        self.journal_path = path.with_name(f"{path.name}.journal")
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
        self._seq = 0
        """The last change written (snapshot or journal line)."""
        self._journal_bytes = 0
        self._unwritten: list[tuple[str, bytes]] = []
        """Answers remembered since the last write."""
        self._snapshotted: tuple[Any, ...] = ()

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
        if obj.get("format") not in READABLE_FORMATS or obj.get("vin") != vin:
            raise ValueError(f"{path} is not a format-{FORMAT} command keystore for {vin}")
        agent_key = Ed25519PrivateKey.from_private_bytes(unb64u(obj["agent_key"]))
        keys = {kid: KeyEntry.from_json(e) for kid, e in obj["keys"].items()}
        recent = OrderedDict((h, ack.encode()) for h, ack in obj.get("recent", []))
        waiting = {h: payload.encode() for h, payload in obj.get("waiting", {}).items()}
        store = cls(path, vin, agent_key, keys, recent, waiting)
        store.tracking = obj.get("tracking")
        store._seq = obj.get("seq", 0)
        store._snapshotted = store._structure()
        if store._replay_journal() or obj.get("format") != FORMAT:
            store.save()  # fold the journal in: appends never follow a torn line
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

    # --- counters -------------------------------------------------------------------

    def use_counter(self, kid: str, ctr: int) -> None:
        """Spend `ctr` of key `kid`; on disk (synced) when this returns, so the car may act.

        The same sync carries the answers journaled since the last one."""
        self.keys[kid].window.mark(ctr)
        self._append([{"ctr": [kid, ctr]}], sync=True)

    # --- answers to resends ---------------------------------------------------------

    def answer_for(self, envelope_hash: str) -> bytes | None:
        return self.recent.get(envelope_hash)

    def remember(self, envelope_hash: str, ack: bytes) -> None:
        """Keep the answer for resends; written by the next `commit()` or `save()`."""
        self.recent[envelope_hash] = ack
        while len(self.recent) > RECENT:
            self.recent.popitem(last=False)
        self._unwritten.append((envelope_hash, ack))

    # --- persistence ----------------------------------------------------------------

    def commit(self) -> None:
        """Write what changed since the last write, as cheaply as it may be: a changed whitelist,
        waiting command or tracking state takes a durable snapshot; answers alone are journaled
        without a sync (see the module docstring for why that is safe)."""
        if self._structure() != self._snapshotted or self._journal_bytes > JOURNAL_MAX_BYTES:
            self.save()
        elif self._unwritten:
            self._append([{"ans": [h, ack.decode()]} for h, ack in self._unwritten], sync=False)

    def save(self) -> None:
        """Snapshot everything durably and empty the journal.

        Order matters: the journal exists before the snapshot is renamed into place, one
        directory fsync makes both durable, and only then is the journal emptied (the
        snapshot's sequence number already makes its old lines inert)."""
        with self._lock:
            self._unwritten.clear()
            obj = {"format": FORMAT, "vin": self.vin, "seq": self._seq,
                   "agent_key": b64u(self.agent_key.private_bytes_raw()),
                   "keys": {kid: e.to_json() for kid, e in self.keys.items()},
                   "recent": [[h, ack.decode()] for h, ack in self.recent.items()],
                   "waiting": {h: payload.decode() for h, payload in self.waiting.items()},
                   "tracking": self.tracking}
            data = json.dumps(obj, separators=(",", ":")).encode()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.journal_path, os.O_WRONLY | os.O_CREAT, 0o600))
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            _write(tmp, data, os.O_TRUNC, sync=True)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            _write(self.journal_path, b"", os.O_TRUNC, sync=True)
            self._journal_bytes = 0
            self._snapshotted = self._structure()

    def _append(self, records: list[dict[str, Any]], *, sync: bool) -> None:
        with self._lock:
            if self._unwritten and sync:
                records = [{"ans": [h, ack.decode()]} for h, ack in self._unwritten] + records
            self._unwritten.clear()
            lines = []
            for record in records:
                self._seq += 1
                body = json.dumps({"s": self._seq, **record}, separators=(",", ":")).encode()
                lines.append(b"%08x %s\n" % (zlib.crc32(body), body))
            data = b"".join(lines)
            _write(self.journal_path, data, os.O_APPEND, sync=sync)
            self._journal_bytes += len(data)

    def _replay_journal(self) -> bool:
        """Apply the journal's lines newer than the snapshot, up to the first torn or corrupt
        one; True if the journal held anything (then it wants folding into a snapshot)."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return False
        for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn
            crc, _, body = line.partition(b" ")
            try:
                if int(crc, 16) != zlib.crc32(body):
                    break
                record = json.loads(body)
            except ValueError:
                break
            if record["s"] <= self._seq:
                continue  # already in the snapshot (a crash between snapshot and emptying)
            if record["s"] != self._seq + 1:
                break
            self._seq = record["s"]
            if "ctr" in record:
                kid, ctr = record["ctr"]
                if kid not in self.keys:  # keys are snapshotted before any counter of theirs
                    raise ValueError(f"{self.journal_path} spends a counter of unknown key {kid}")
                self.keys[kid].window.mark(ctr)
            elif "ans" in record:
                h, ack = record["ans"]
                self.remember(h, ack.encode())
        self._unwritten.clear()
        return bool(data)

    def _structure(self) -> tuple[Any, ...]:
        """What only a snapshot records: the whitelist, waiting commands and tracking."""
        return (tuple((kid, e.role, e.nbf, e.exp, e.revoked_ms) for kid, e in self.keys.items()),
                tuple(self.waiting), json.dumps(self.tracking, sort_keys=True))


def _write(path: Path, data: bytes, flags: int, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
