"""Bearer tokens via the OAuth2 password flow (so the /docs "Authorize" button works)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from chelian.api.deps import API_PREFIX, EngineDep, SettingsDep
from chelian.api.schemas.users import TokenPublic
from chelian.services.accounts.signup import log_in

router = APIRouter(prefix=f"{API_PREFIX}/auth", tags=["auth"])


@router.post("/token", response_model=TokenPublic,
             responses={401: {"description": "Wrong e-mail or password"}})
def issue_token(form: Annotated[OAuth2PasswordRequestForm, Depends()], engine: EngineDep,
                settings: SettingsDep) -> TokenPublic:
    """Form fields `username` (the e-mail) and `password`; returns a bearer token."""
    token = log_in(engine, form.username, form.password, settings.token_ttl_s)
    return TokenPublic(access_token=token, expires_in=settings.token_ttl_s)
