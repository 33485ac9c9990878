"""Signing keys: your devices' public keys, the platform's, and the key each of your cars signs acks with.

A device key registered here lets the cloud check (and attribute) envelopes you sign yourself;
it gets power over a car only through an owner-signed `enrol_key` command on that car.

Pinning a car's ack key decides which car the cloud believes, so only the car's legal owner
may change it; a fleet operator can read it like any other fact about the car.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from chelian.api.deps import API_PREFIX, CurrentUser, EngineDep, LegalOwnerVehicle, OwnedVehicle
from chelian.api.routes.commands import command_service
from chelian.api.schemas.commands import (
    AgentKeyPin,
    AgentKeyPublic,
    DeviceKeyCreate,
    DeviceKeyPublic,
    DeviceKeysPublic,
    PlatformKeyPublic,
)
from chelian.errors import NotFoundError
from chelian.services.commands import keys
from chelian.services.commands.envelope import key_id, unb64u

router = APIRouter(prefix=API_PREFIX, tags=["keys"])


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=DeviceKeyPublic,
             responses={400: {"description": "Not an Ed25519 public key"},
                        409: {"description": "Key already registered"}})
def register_key(body: DeviceKeyCreate, user: CurrentUser, engine: EngineDep) -> DeviceKeyPublic:
    return DeviceKeyPublic.of(keys.register_device_key(engine, user.id, body.public_key, body.name))


@router.get("/keys", response_model=DeviceKeysPublic)
def list_keys(user: CurrentUser, engine: EngineDep) -> DeviceKeysPublic:
    found = [DeviceKeyPublic.of(k) for k in keys.device_keys(engine, user.id)]
    return DeviceKeysPublic(data=found, count=len(found))


@router.get("/keys/platform", response_model=PlatformKeyPublic)
def platform_key(request: Request, _user: CurrentUser) -> PlatformKeyPublic:
    """The public key cars must trust (role `platform`): give it to the agent at provisioning."""
    public = keys.platform_public_key(request.app.state.settings.data_dir)
    if public is None:
        public = command_service(request).platform_key.public
    return PlatformKeyPublic(kid=key_id(unb64u(public)), public_key=public)


@router.delete("/keys/{kid}", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: {"description": "No such active key of yours"}})
def revoke_key(kid: str, user: CurrentUser, engine: EngineDep) -> Response:
    """Stop relaying envelopes signed by this key (revoke it on your cars with revoke_key too)."""
    keys.revoke_device_key(engine, user.id, kid)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/vehicles/{vin}/agent-key", response_model=AgentKeyPublic,
            responses={404: {"description": "Not one of your cars, or it has not announced a key yet"}})
def read_agent_key(vehicle: OwnedVehicle, engine: EngineDep) -> AgentKeyPublic:
    pinned = keys.agent_key(engine, vehicle.id)
    if pinned is None:
        raise NotFoundError(f"vehicle {vehicle.vin} has not announced its command key yet")
    return AgentKeyPublic.of(vehicle.vin, pinned)


@router.put("/vehicles/{vin}/agent-key", response_model=AgentKeyPublic,
            responses={400: {"description": "Not an Ed25519 public key"},
                       404: {"description": "Not a car you legally own"}})
def pin_agent_key(body: AgentKeyPin, vehicle: LegalOwnerVehicle, engine: EngineDep) -> AgentKeyPublic:
    """Pin the key your car shows (its agent prints it), instead of trusting its first announcement."""
    return AgentKeyPublic.of(vehicle.vin, keys.pin_agent_key(engine, vehicle.id, body.public_key))


@router.delete("/vehicles/{vin}/agent-key", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: {"description": "Not a car you legally own, or no key pinned"}})
def unpin_agent_key(vehicle: LegalOwnerVehicle, engine: EngineDep) -> Response:
    """Forget the car's key (a replaced head unit): the next one it announces is pinned."""
    keys.unpin_agent_key(engine, vehicle.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
