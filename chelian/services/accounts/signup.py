"""Signing people up and logging them in with bearer tokens."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import Engine

from chelian.errors import AuthError, ValidationError
from chelian.security.hashing import hash_password, token_digest, verify_password
from chelian.storage.db import now_ms
from chelian.storage.repositories import users
from chelian.storage.repositories.users import User

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 320:
        raise ValidationError(f"not a valid e-mail address: {email!r}")
    return email


def sign_up(engine: Engine, email: str, password: str) -> User:
    email = normalise_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    with engine.begin() as conn:
        return users.create(conn, email, hash_password(password), now_ms())


def log_in(engine: Engine, email: str, password: str, ttl_s: int) -> str:
    """Check the password and return a new bearer token (only its digest is stored)."""
    with engine.connect() as conn:
        user = users.by_email(conn, email.strip().lower())
    if user is None or not verify_password(password, user.password_hash):
        raise AuthError("wrong e-mail or password")
    token = secrets.token_urlsafe(32)
    created = now_ms()
    with engine.begin() as conn:
        users.add_token(conn, user.id, token_digest(token), created, created + ttl_s * 1000)
    return token


def user_for_token(engine: Engine, token: str) -> User:
    with engine.connect() as conn:
        user = users.user_for_token(conn, token_digest(token), now_ms())
    if user is None:
        raise AuthError("invalid or expired token")
    return user
