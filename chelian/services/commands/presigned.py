"""Envelopes signed on a person's own device (owner-only commands such as enrol_key).

The cloud cannot sign these - the platform key's role may not change a car's whitelist - so
it only checks and relays them: the signing key must be one the caller registered (and has
not revoked), the signature must verify, the envelope must be for this car, readable, of a
known type with valid arguments, and not yet expired. The car checks all of it again (and
the role, which only the car's whitelist knows); the early check just turns a certain
rejection into an immediate 400 instead of a round trip. The bytes go to the car unchanged.
"""

from __future__ import annotations

from typing import Any

from chelian.errors import ValidationError
from chelian.services.commands.catalog import ArgsError, spec_for
from chelian.services.commands.envelope import (
    Command,
    EnvelopeError,
    Sealed,
    canonical,
    load_public,
    open_sealed,
    unwrap,
)
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.repositories import keys as key_repo
from chelian.storage.repositories.commands import Car, CommandRow
from chelian.storage.repositories.vehicles import Vehicle


def submit_presigned(service: CommandService, vehicle: Car | Vehicle, user_id: int,
                     signed: dict[str, Any], idempotency_key: str | None = None) -> tuple[CommandRow, bool]:
    try:
        sealed = unwrap(canonical(signed))
    except (EnvelopeError, TypeError, ValueError) as exc:
        raise ValidationError(f"signed is not an envelope: {exc}") from None
    with service.autocommit.connect() as conn:
        key = key_repo.device_key(conn, sealed.kid)
    if key is None or key.user_id != user_id:
        raise ValidationError(f"unknown_key: {sealed.kid} is not one of your keys (register it with "
                              f"POST /api/v1/keys)")
    if key.revoked_ms is not None:
        raise ValidationError(f"key_not_valid_now: you revoked key {sealed.kid}")
    try:
        command = Command.from_body(open_sealed(sealed, load_public(key.public_key)))
    except EnvelopeError as exc:
        raise ValidationError(str(exc)) from None
    if command.vin != vehicle.vin:
        raise ValidationError(f"wrong_vin: the envelope is for {command.vin}, not {vehicle.vin}")
    try:
        spec_for(command.type).normalise(command.args)
    except ArgsError as exc:
        raise ValidationError(f"malformed: {exc}") from None
    if command.exp <= service.clock():
        raise ValidationError(f"expired: the envelope expired at {command.exp} (epoch ms)")
    payload = Sealed(sealed.kid, sealed.env, sealed.sig, command.id).wire()
    return service.record_presigned(vehicle, user_id, command, sealed.kid, payload, sealed.hash,
                                    idempotency_key)
