"""Commands and keys as the API shows them: times as UTC datetimes, latency in milliseconds.

A command request is either a platform command (`type` + `args` + `expires_in_s`, signed by
the cloud) or an envelope the caller signed on their own device (`signed`), never both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chelian.api.schemas.common import ms_to_datetime
from chelian.services.commands.catalog import REASONS
from chelian.services.commands.lifecycle import DEFAULT_EXPIRES_S, MAX_EXPIRES_S
from chelian.storage.repositories.commands import CommandRow
from chelian.storage.repositories.keys import AgentKey, DeviceKey


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else ms_to_datetime(ms)


class SignedEnvelope(BaseModel):
    """`{"v": 1, "kid": ..., "env": base64url(body), "sig": base64url(Ed25519 signature)}`."""

    model_config = ConfigDict(extra="forbid")
    v: int
    kid: str = Field(max_length=64)
    env: str = Field(max_length=8192)
    sig: str = Field(max_length=128)
    id: str | None = Field(default=None, max_length=64)


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str | None = Field(default=None, max_length=32, examples=["lock"])
    args: dict[str, Any] = Field(default_factory=dict)
    expires_in_s: int | None = Field(default=None, description=f"default {DEFAULT_EXPIRES_S}, at most "
                                                               f"{MAX_EXPIRES_S} (one day)")
    signed: SignedEnvelope | None = Field(default=None, description="an envelope signed on your own device")

    @model_validator(mode="after")
    def _one_kind(self) -> CommandCreate:
        if (self.type is None) == (self.signed is None):
            raise ValueError("give either type (and args) or signed, not both and not neither")
        if self.signed is not None and (self.args or self.expires_in_s is not None):
            raise ValueError("a signed envelope carries its own args and expiry")
        return self


class LatencyPublic(BaseModel):
    sent_to_ack_ms: int | None
    """From the cloud publishing the command to the car's ack arriving."""
    request_to_final_ms: int | None
    """From the API request to the final state (ack or expiry)."""


class CommandPublic(BaseModel):
    id: str
    vin: str
    type: str
    args: dict[str, Any]
    status: str
    reason: str | None
    reason_text: str | None
    result: dict[str, Any] | None
    signer: str
    kid: str
    counter: int
    requested_by: int | None
    """The user on whose behalf it was sent."""
    origin: str = Field(description="what sent it for them: `user` (their token or the console) or "
                                    "`service:<name>` (a platform service, e.g. `service:theft` tracking a "
                                    "stolen car)")
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    finished_at: datetime | None
    car_time: datetime | None
    attempts: int
    latency: LatencyPublic

    @classmethod
    def of(cls, vin: str, row: CommandRow) -> CommandPublic:
        detail = (row.result or {}).get("detail")
        reason_text = detail if isinstance(detail, str) else REASONS.get(row.reason or "")
        acked = row.acked_ms is not None and row.sent_ms is not None
        # model_construct: every value is of its field's type by construction (a CommandRow from
        # the database), so validating it again would only cost time on the hot path.
        latency = LatencyPublic.model_construct(
            sent_to_ack_ms=row.acked_ms - row.sent_ms if acked else None,  # type: ignore[operator]
            request_to_final_ms=row.finished_ms - row.created_ms if row.finished_ms is not None else None)
        return cls.model_construct(
            id=row.id, vin=vin, type=row.type, args=row.args, status=row.status, reason=row.reason,
            reason_text=reason_text, result=row.result, signer=row.signer, kid=row.kid, counter=row.counter,
            requested_by=row.requested_by, origin=row.origin, created_at=ms_to_datetime(row.created_ms),
            expires_at=ms_to_datetime(row.expires_ms), sent_at=_at(row.sent_ms), acked_at=_at(row.acked_ms),
            finished_at=_at(row.finished_ms), car_time=_at(row.car_ts_ms), attempts=row.attempts,
            latency=latency)


class CommandsPublic(BaseModel):
    """Newest first; when `truncated`, page back with `before` = the oldest `created_at`."""

    vin: str
    data: list[CommandPublic]
    count: int
    truncated: bool


class DeviceKeyCreate(BaseModel):
    public_key: str = Field(max_length=64,
                            description="raw 32-byte Ed25519 public key, base64url without padding")
    name: str = Field(max_length=64, examples=["Ana's phone"])


class DeviceKeyPublic(BaseModel):
    kid: str
    public_key: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: DeviceKey) -> DeviceKeyPublic:
        return cls(kid=key.kid, public_key=key.public_key, name=key.name,
                   created_at=ms_to_datetime(key.created_ms), revoked_at=_at(key.revoked_ms))


class DeviceKeysPublic(BaseModel):
    data: list[DeviceKeyPublic]
    count: int


class PlatformKeyPublic(BaseModel):
    """What a car's agent needs in its configuration to trust this cloud's commands."""

    kid: str
    public_key: str
    role: str = "platform"


class AgentKeyPin(BaseModel):
    public_key: str = Field(max_length=64)


class AgentKeyPublic(BaseModel):
    vin: str
    kid: str
    public_key: str
    pinned_at: datetime
    how: str

    @classmethod
    def of(cls, vin: str, key: AgentKey) -> AgentKeyPublic:
        return cls(vin=vin, kid=key.kid, public_key=key.public_key, pinned_at=ms_to_datetime(key.pinned_ms),
                   how=key.how)
