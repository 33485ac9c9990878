"""Signed envelopes: the exact bytes a key signed travel with the signature, base64url-wrapped.

    {"v": 1, "id": "<hint>", "kid": "<key id>", "env": b64u(body bytes), "sig": b64u(Ed25519(body bytes))}

Why wrap the body instead of signing re-serialised JSON: the verifier checks the signature
over the decoded `env` bytes *before* parsing them, so no JSON parser quirk (duplicate keys,
number formats, unicode escapes) can make signer and verifier disagree about what was signed,
and a hostile payload never reaches the parser unauthenticated. The signer still writes the
body canonically (sorted keys, no spaces) so equal commands have equal bytes and hashes.

`id` outside the signature is only a routing hint: it lets a car say which command it refused
when the signature did not verify. Acks also carry the car's public key (`pub`) so the cloud
can pin it on first use (see docs/protocol.md).

Example:
    sealed = seal(platform_key, Command("c1", vin, "lock", {}, 7, iat, exp).body(), id_hint="c1")
    payload = sealed.wire()                     # bytes to publish
    body = open_sealed(unwrap(payload), platform_key.public_key())
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from chelian.services.commands.catalog import BAD_SIGNATURE, MALFORMED

WIRE_VERSION: Final = 1
CLOCK_SKEW_MS: Final = 10_000
"""How far apart car and cloud clocks may be: a car accepts a command up to this much before
its `iat` and after its `exp`; the cloud waits as long before calling a sent command expired."""
MAX_LIFETIME_MS: Final = 24 * 3600 * 1000
"""No envelope may be valid for longer than a day: it bounds how long a captured one matters."""

KIND_COMMAND: Final = "command"
KIND_ACK: Final = "ack"
KIND_AGENT_KEY: Final = "agent_key"

SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REJECTED: Final = "rejected"
ACK_OUTCOMES: Final = (SUCCEEDED, FAILED, REJECTED)

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
_B64U = re.compile(r"[A-Za-z0-9_-]*")


class EnvelopeError(ValueError):
    """Why an envelope cannot be trusted or read; `reason` is one of catalog's reasons."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: Any, what: str = "value") -> bytes:
    """Strict base64url without padding (the only spelling signers produce)."""
    if not isinstance(text, str) or not _B64U.fullmatch(text) or len(text) % 4 == 1:
        raise EnvelopeError(MALFORMED, f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeError(MALFORMED, f"{what} is not base64url") from None


def canonical(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one spelling per value."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode()


def digest(env: bytes) -> str:
    """What acks quote to say which exact envelope they answer."""
    return b64u(hashlib.sha256(env).digest())


def public_raw(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes_raw()


def key_id(public: bytes | Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A key's name: base64url of the first 16 bytes of SHA-256 of its raw public key.

    Derived, never chosen, so a whitelist entry cannot claim someone else's id.
    """
    raw = public if isinstance(public, bytes) else public_raw(public)
    return b64u(hashlib.sha256(raw).digest()[:16])


def load_public(text: Any) -> Ed25519PublicKey:
    raw = unb64u(text, "public key")
    if len(raw) != 32:
        raise EnvelopeError(MALFORMED, "a public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True, slots=True)
class Sealed:
    """An envelope as it travels; nothing in it is trusted until `open_sealed` succeeds."""

    kid: str
    env: bytes
    sig: bytes = field(repr=False)
    id: str | None = None
    pub: bytes | None = None

    def wire(self) -> bytes:
        outer: dict[str, Any] = {"v": WIRE_VERSION, "kid": self.kid, "env": b64u(self.env),
                                 "sig": b64u(self.sig)}
        if self.id is not None:
            outer["id"] = self.id
        if self.pub is not None:
            outer["pub"] = b64u(self.pub)
        return canonical(outer)

    @property
    def hash(self) -> str:
        return digest(self.env)


@dataclass(frozen=True, slots=True)
class Signer:
    """A private key with its id and public half worked out once (per envelope they cost a key
    derivation and a hash: measurable on the command hot path)."""

    private: Ed25519PrivateKey = field(repr=False)
    kid: str
    pub: bytes

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> Signer:
        return cls(private, key_id(private), public_raw(private))

    def seal(self, body: dict[str, Any], *, id_hint: str | None = None, with_pub: bool = False) -> Sealed:
        env = canonical(body)
        return Sealed(self.kid, env, self.private.sign(env), id_hint, self.pub if with_pub else None)


def seal(key: Ed25519PrivateKey, body: dict[str, Any], *, id_hint: str | None = None,
         with_pub: bool = False) -> Sealed:
    return Signer.of(key).seal(body, id_hint=id_hint, with_pub=with_pub)


def unwrap(payload: bytes) -> Sealed:
    """The outer layer only: shape checks, no trust. MALFORMED when it is not an envelope."""
    try:
        outer = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError(MALFORMED, "not UTF-8 JSON") from None
    if not isinstance(outer, dict):
        raise EnvelopeError(MALFORMED, "not a JSON object")
    hint = outer.get("id")
    hint = hint if isinstance(hint, str) and ID_PATTERN.fullmatch(hint) else None
    if outer.get("v") != WIRE_VERSION:
        raise EnvelopeError(MALFORMED, f"unsupported envelope version {outer.get('v')!r}")
    kid = outer.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 64:
        raise EnvelopeError(MALFORMED, "kid must be a key id")
    pub = unb64u(outer["pub"], "pub") if "pub" in outer else None
    return Sealed(kid, unb64u(outer.get("env"), "env"), unb64u(outer.get("sig"), "sig"), hint, pub)


def open_sealed(sealed: Sealed, key: Ed25519PublicKey) -> dict[str, Any]:
    """Verify the signature over the env bytes, and only then parse them."""
    try:
        key.verify(sealed.sig, sealed.env)
    except InvalidSignature:
        raise EnvelopeError(BAD_SIGNATURE, f"signature does not verify with key {sealed.kid}") from None
    try:
        body = json.loads(sealed.env)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError(MALFORMED, "signed body is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise EnvelopeError(MALFORMED, "signed body is not a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if type(value) not in (kind if isinstance(kind, tuple) else (kind,)):
        raise EnvelopeError(MALFORMED, f"{name} is missing or has the wrong type")
    return value


@dataclass(frozen=True, slots=True)
class Command:
    """The signed body of a command: everything the car needs to decide, nothing else."""

    id: str
    vin: str
    type: str
    args: dict[str, Any]
    ctr: int
    iat: int
    exp: int

    def body(self) -> dict[str, Any]:
        return {"kind": KIND_COMMAND, "id": self.id, "vin": self.vin, "type": self.type, "args": self.args,
                "ctr": self.ctr, "iat": self.iat, "exp": self.exp}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Command:
        if body.get("kind") != KIND_COMMAND:
            raise EnvelopeError(MALFORMED, "not a command envelope")
        command = cls(_field(body, "id", str), _field(body, "vin", str), _field(body, "type", str),
                      _field(body, "args", dict), _field(body, "ctr", int), _field(body, "iat", int),
                      _field(body, "exp", int))
        if not ID_PATTERN.fullmatch(command.id):
            raise EnvelopeError(MALFORMED, "id must be 8-64 characters of [A-Za-z0-9_-]")
        lifetime_ok = command.iat < command.exp <= command.iat + MAX_LIFETIME_MS
        if command.ctr < 1 or command.iat < 0 or not lifetime_ok:
            raise EnvelopeError(MALFORMED, "ctr must be >= 1 and iat < exp <= iat + 1 day")
        return command


@dataclass(frozen=True, slots=True)
class Ack:
    """The car's signed answer: which envelope (`h`), what happened, and when by the car's clock."""

    id: str
    vin: str
    h: str
    status: str
    reason: str | None
    result: dict[str, Any]
    ts: int

    def body(self) -> dict[str, Any]:
        return {"kind": KIND_ACK, "id": self.id, "vin": self.vin, "h": self.h, "status": self.status,
                "reason": self.reason, "result": self.result, "ts": self.ts}

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Ack:
        if body.get("kind") != KIND_ACK:
            raise EnvelopeError(MALFORMED, "not an ack envelope")
        ack = cls(_field(body, "id", str), _field(body, "vin", str), _field(body, "h", str),
                  _field(body, "status", str), _field(body, "reason", (str, type(None))),
                  _field(body, "result", dict), _field(body, "ts", int))
        if ack.status not in ACK_OUTCOMES:
            raise EnvelopeError(MALFORMED, f"status must be one of {', '.join(ACK_OUTCOMES)}")
        return ack
