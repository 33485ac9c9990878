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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from chelian.services.commands.envelope import (
    KIND_AGENT_KEY,
    Ack,
    EnvelopeError,
    b64u,
    key_id,
    load_public,
    open_sealed,
    unwrap,
)
from chelian.services.commands.keys import PINNED_ON_FIRST_USE
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.repositories import commands as repo
from chelian.storage.repositories import keys as key_repo
from chelian.storage.repositories.keys import AgentKey

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


def handle_acks(service: CommandService, inbound: list[tuple[str, bytes, int]]) -> list[AckOutcome]:
    """Verify and settle a batch of (vin, payload, received_ms): one read for the cars' keys, one
    transaction for all outcomes (what lets one relay thread keep up with a fleet)."""
    with service.autocommit.connect() as conn:
        known = key_repo.vehicles_and_agent_keys(conn, {vin for vin, _payload, _ms in inbound})
    outcomes = [AckOutcome()] * len(inbound)
    verified: list[tuple[int, str, int, Ack, int]] = []
    for i, (vin, payload, received_ms) in enumerate(inbound):
        checked = _verify(service, known, vin, payload, received_ms)
        if isinstance(checked, Ack):
            verified.append((i, vin, known[vin][0], checked, received_ms))
        else:
            outcomes[i] = checked
    if not verified:
        return outcomes
    moved = service.settle_acks([
        dict(id=ack.id, vehicle_id=vehicle_id, env_hash=ack.h, status=ack.status, reason=ack.reason,
             result=ack.result, acked_ms=received_ms, car_ts_ms=ack.ts, finished_ms=received_ms)
        for _i, _vin, vehicle_id, ack, received_ms in verified])
    for i, vin, vehicle_id, ack, received_ms in verified:
        settled = moved.pop((ack.id, ack.h), None)  # pop: a second ack for the same command is a repeat
        if settled is None:
            outcomes[i] = _why_not_settled(service, vin, vehicle_id, ack)
            continue
        car_ms = received_ms - settled.sent_ms if settled.sent_ms is not None else None
        log.info("%s id=%s vin=%s type=%s status=%s reason=%s car_ms=%s total_ms=%d", COMMAND_SETTLED, ack.id,
                 vin, settled.type, ack.status, ack.reason, car_ms, received_ms - settled.created_ms)
        outcomes[i] = AckOutcome(command_id=ack.id)
    return outcomes


def handle_ack(service: CommandService, vin: str, payload: bytes, received_ms: int) -> AckOutcome:
    return handle_acks(service, [(vin, payload, received_ms)])[0]


def _verify(service: CommandService, known: dict[str, tuple[int, AgentKey | None]], vin: str, payload: bytes,
            received_ms: int) -> Ack | AckOutcome:
    """The ack, once its signature checks out against the car's pinned key (pinning it on
    first use); otherwise why it was ignored. An announcement pins and ends here."""
    try:
        sealed = unwrap(payload)
    except EnvelopeError as exc:
        return _ignore(vin, "malformed", exc.detail)
    if vin not in known:
        return _ignore(vin, "unknown_vehicle")
    vehicle_id, pinned = known[vin]
    try:
        if pinned is None:
            if sealed.pub is None or key_id(sealed.pub) != sealed.kid:
                return _ignore(vin, "no_key_pinned", "and the message carries no usable public key")
            body = open_sealed(sealed, load_public(b64u(sealed.pub)))
        elif sealed.kid != pinned.kid:
            return _ignore(vin, "key_mismatch", f"signed by {sealed.kid}, pinned {pinned.kid}")
        else:
            body = open_sealed(sealed, load_public(pinned.public_key))
    except EnvelopeError as exc:
        return _ignore(vin, exc.reason, exc.detail)
    if body.get("vin") != vin:
        return _ignore(vin, "wrong_vin", f"signed for {body.get('vin')!r}")
    if pinned is None:
        with service.engine.begin() as conn:
            pinned = key_repo.pin_agent_key(conn, vehicle_id, sealed.kid, b64u(sealed.pub or b""),
                                            received_ms, PINNED_ON_FIRST_USE)
        known[vin] = (vehicle_id, pinned)
        if pinned.kid != sealed.kid:  # another process pinned a different key first
            return _ignore(vin, "key_mismatch", f"signed by {sealed.kid}, pinned {pinned.kid}")
        log.info("%s vin=%s kid=%s how=%s", AGENT_KEY_PINNED, vin, pinned.kid, pinned.how)
    if body.get("kind") == KIND_AGENT_KEY:
        return AckOutcome()
    try:
        return Ack.from_body(body)
    except EnvelopeError as exc:
        return _ignore(vin, exc.reason, exc.detail)


def _why_not_settled(service: CommandService, vin: str, vehicle_id: int, ack: Ack) -> AckOutcome:
    """The slow path, for the log: which check the settling UPDATE failed."""
    with service.autocommit.connect() as conn:
        row = repo.get(conn, ack.id)
    if row is None or row.vehicle_id != vehicle_id:
        return _ignore(vin, "unknown_command", f"id={ack.id}")
    if row.env_hash != ack.h:
        return _ignore(vin, "hash_mismatch", f"id={ack.id}: the ack answers another envelope")
    return AckOutcome()  # already final: a repeated ack
