"""People: sign-up input, what others may see of a user, and bearer tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from chelian.api.schemas.common import ms_to_datetime
from chelian.storage.repositories.users import User


class UserCreate(BaseModel):
    """E-mail format and password length are checked by the accounts service (400 with reason)."""

    email: str = Field(max_length=320, examples=["ana@example.com"])
    password: str = Field(max_length=1024, examples=["correct horse battery"])


class UserPublic(BaseModel):
    """A user without the password hash."""

    id: int
    email: str
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(id=user.id, email=user.email, created_at=ms_to_datetime(user.created_ms))


class TokenPublic(BaseModel):
    """The OAuth2 token response (RFC 6749 §5.1), so standard clients and /docs understand it."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")
