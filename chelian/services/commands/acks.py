"""Acks from cars: verify the car's signature, then settle the one envelope the ack quotes.

How the cloud learns a car's key: trust on first use. Every ack (and the `agent_key`
announcement a car publishes after connecting) carries the car's public key; when none is
pinned yet, the cloud verifies the message with that key and pins it. Only the car's own
broker account may publish on its `acks` topic, so the first key seen comes from whoever holds
the car's MQTT secret - normally the car, at its first connect after provisioning. From then
on an ack signed by any other key is ignored (logged `ack_ignored reason=key_mismatch`) until
the owner unpins the key (a replaced head unit) or pins the right one by hand.

An ack settles a command only if its `h` is the hash of the envelope the cloud sent under
that id: a car answering a forged envelope that reused a real command's id (a hostile broker
could inject one) cannot settle the real command.

Pins are read through the process's `PinnedKeys` cache and re-checked by the settling
statement itself: an ack whose key was unpinned since it was cached does not settle, its car's
entry is forgotten and the ack is handled once more against the pin as it is now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from chelian.services.commands.envelope import (
    KIND_AGENT_KEY,
    Ack,
    EnvelopeError,
    Sealed,
    b64u,
    key_id,
    load_public,
    open_sealed,
    unwrap,
)
from chelian.services.commands.keys import PINNED_ON_FIRST_USE, Pinned
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories import keys as key_repo

log = logging.getLogger("chelian.commands")

ACK_IGNORED: Final = "ack_ignored"
COMMAND_SETTLED: Final = "command_settled"
AGENT_KEY_PINNED: Final = "agent_key_pinned"


@dataclass(frozen=True, slots=True)
class AckOutcome:
    command_id: str | None = None
    """The command this ack settled (None: an announcement, a repeat, or ignored)."""
    ignored: str | None = None


def _ignore(vin: str, reason: str, detail: str = "") -> AckOutcome:
    log.warning("%s vin=%s reason=%s %s", ACK_IGNORED, vin, reason, detail)
    return AckOutcome(ignored=reason)


def handle_acks(service: CommandService, inbound: list[tuple[str, bytes, int]], *,
                _again: bool = True) -> list[AckOutcome]:
    """Verify and settle a batch of (vin, payload, received_ms): pins from the cache (one read
    for the cars it cannot answer for), one statement for all outcomes (what lets one relay
    thread keep up with a fleet)."""
    outcomes = [AckOutcome()] * len(inbound)
    sealed: list[Sealed | None] = []
    for i, (vin, payload, _ms) in enumerate(inbound):
        try:
            sealed.append(unwrap(payload))
        except EnvelopeError as exc:
            sealed.append(None)
            outcomes[i] = _ignore(vin, "malformed", exc.detail)
    unpinned = _read_pins(service, {vin for (vin, _p, _ms), s in zip(inbound, sealed, strict=True)
                                    if s is not None and _cached_kid(service, vin) != s.kid})
    verified: list[tuple[int, str, int, Ack, str, int]] = []
    for i, ((vin, _payload, received_ms), message) in enumerate(zip(inbound, sealed, strict=True)):
        if message is None:
            continue
        checked = _verify(service, unpinned, vin, message, received_ms)
        if isinstance(checked, tuple):
            ack, vehicle_id = checked
            verified.append((i, vin, vehicle_id, ack, message.kid, received_ms))
        else:
            outcomes[i] = checked
    if not verified:
        return outcomes
    moved = service.settle_acks([
        dict(id=ack.id, vehicle_id=vehicle_id, env_hash=ack.h, kid=kid, status=ack.status, reason=ack.reason,
             result=ack.result, acked_ms=received_ms, car_ts_ms=ack.ts, finished_ms=received_ms)
        for _i, _vin, vehicle_id, ack, kid, received_ms in verified])
    again: list[int] = []
    for i, vin, vehicle_id, ack, kid, received_ms in verified:
        settled = moved.pop((ack.id, ack.h), None)  # pop: a second ack for the same command is a repeat
        if settled is None:
            outcome = _why_not_settled(service, vin, vehicle_id, ack, kid)
            if outcome is None:  # the cached pin had gone: once more, against the pin as it is now
                if _again:
                    again.append(i)
                    continue
                outcome = _ignore(vin, "key_mismatch", f"{kid} is no longer pinned")
            outcomes[i] = outcome
            continue
        car_ms = received_ms - settled.sent_ms if settled.sent_ms is not None else None
        log.info("%s id=%s vin=%s type=%s status=%s reason=%s car_ms=%s total_ms=%d", COMMAND_SETTLED, ack.id,
                 vin, settled.type, ack.status, ack.reason, car_ms, received_ms - settled.created_ms)
        outcomes[i] = AckOutcome(command_id=ack.id)
    if again:
        for i, outcome in zip(again, handle_acks(service, [inbound[i] for i in again], _again=False),
                              strict=True):
            outcomes[i] = outcome
    return outcomes


def handle_ack(service: CommandService, vin: str, payload: bytes, received_ms: int) -> AckOutcome:
    return handle_acks(service, [(vin, payload, received_ms)])[0]


def _cached_kid(service: CommandService, vin: str) -> str | None:
    cached = service.pinned_keys.get(vin)
    return None if cached is None else cached.key.kid


def _read_pins(service: CommandService, vins: set[str]) -> dict[str, int]:
    """Refresh the cache for `vins` in one round trip; VIN -> vehicle id of the known cars with no
    pinned key (unknown VINs are absent from both)."""
    if not vins:
        return {}
    with service.autocommit.connect() as conn:
        known = key_repo.vehicles_and_agent_keys(conn, vins)
    unpinned = {}
    for vin in vins:
        service.pinned_keys.forget(vin)
        if vin in known:
            vehicle_id, key = known[vin]
            if key is None:
                unpinned[vin] = vehicle_id
            else:
                service.pinned_keys.put(vin, vehicle_id, key)
    return unpinned


def _verify(service: CommandService, unpinned: dict[str, int], vin: str, sealed: Sealed,
            received_ms: int) -> tuple[Ack, int] | AckOutcome:
    """(the ack, its car's id), once its signature checks out against the car's pinned key
    (pinning it on first use); otherwise why it was ignored. An announcement pins and ends here."""
    pinned: Pinned | None = service.pinned_keys.get(vin)
    if pinned is None and vin not in unpinned:
        return _ignore(vin, "unknown_vehicle")
    try:
        if pinned is None:
            if sealed.pub is None or key_id(sealed.pub) != sealed.kid:
                return _ignore(vin, "no_key_pinned", "and the message carries no usable public key")
            body = open_sealed(sealed, load_public(b64u(sealed.pub)))
        elif sealed.kid != pinned.key.kid:
            return _ignore(vin, "key_mismatch", f"signed by {sealed.kid}, pinned {pinned.key.kid}")
        else:
            body = open_sealed(sealed, pinned.public)
    except EnvelopeError as exc:
        return _ignore(vin, exc.reason, exc.detail)
    if body.get("vin") != vin:
        return _ignore(vin, "wrong_vin", f"signed for {body.get('vin')!r}")
    if pinned is None:
        vehicle_id = unpinned.pop(vin)
        with service.engine.begin() as conn:
            key = key_repo.pin_agent_key(conn, vehicle_id, sealed.kid, b64u(sealed.pub or b""), received_ms,
                                         PINNED_ON_FIRST_USE)
        pinned = service.pinned_keys.put(vin, vehicle_id, key)
        if key.kid != sealed.kid:  # another process pinned a different key first
            return _ignore(vin, "key_mismatch", f"signed by {sealed.kid}, pinned {key.kid}")
        log.info("%s vin=%s kid=%s how=%s", AGENT_KEY_PINNED, vin, key.kid, key.how)
    if body.get("kind") == KIND_AGENT_KEY:
        return AckOutcome()
    try:
        return Ack.from_body(body), pinned.vehicle_id
    except EnvelopeError as exc:
        return _ignore(vin, exc.reason, exc.detail)


def _why_not_settled(service: CommandService, vin: str, vehicle_id: int, ack: Ack,
                     kid: str) -> AckOutcome | None:
    """The slow path, for the log: which check the settling UPDATE failed. None: the key that
    signed the ack is no longer pinned (the cache entry is forgotten)."""
    with service.autocommit.connect() as conn:
        pinned = key_repo.agent_key(conn, vehicle_id)
        row = repo.get(conn, ack.id)
    if pinned is None or pinned.kid != kid:
        service.pinned_keys.forget(vin)
        return None
    if row is None or row.vehicle_id != vehicle_id:
        return _ignore(vin, "unknown_command", f"id={ack.id}")
    if row.env_hash != ack.h:
        return _ignore(vin, "hash_mismatch", f"id={ack.id}: the ack answers another envelope")
    return AckOutcome()  # already final: a repeated ack
