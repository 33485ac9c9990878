"""Signing up, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, status

from chelian.api.deps import API_PREFIX, CurrentUser, EngineDep
from chelian.api.schemas.users import UserCreate, UserPublic
from chelian.services.accounts.signup import sign_up

router = APIRouter(prefix=f"{API_PREFIX}/users", tags=["users"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserPublic,
             responses={400: {"description": "Invalid e-mail or too short password"},
                        409: {"description": "E-mail already registered"}})
def create_user(body: UserCreate, engine: EngineDep) -> UserPublic:
    return UserPublic.of(sign_up(engine, body.email, body.password))


@router.get("/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.of(user)
