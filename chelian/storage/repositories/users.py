"""Users and their bearer tokens."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from chelian.errors import ConflictError
from chelian.storage.tables import api_tokens, users


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    password_hash: str
    created_ms: int


def create(conn: Connection, email: str, password_hash: str, created_ms: int) -> User:
    try:
        user_id = conn.execute(
            insert(users).values(email=email, password_hash=password_hash, created_ms=created_ms)
            .returning(users.c.id)
        ).scalar_one()
    except IntegrityError as exc:
        raise ConflictError(f"a user with e-mail {email} already exists") from exc
    return User(user_id, email, password_hash, created_ms)


def by_email(conn: Connection, email: str) -> User | None:
    row = conn.execute(select(users).where(users.c.email == email)).first()
    return User(*row) if row else None


def by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return User(*row) if row else None


def add_token(conn: Connection, user_id: int, token_hash: str, created_ms: int, expires_ms: int) -> None:
    conn.execute(insert(api_tokens).values(user_id=user_id, token_hash=token_hash,
                                           created_ms=created_ms, expires_ms=expires_ms))


def user_for_token(conn: Connection, token_hash: str, now_ms: int) -> User | None:
    row = conn.execute(
        select(users).join(api_tokens, api_tokens.c.user_id == users.c.id)
        .where(api_tokens.c.token_hash == token_hash, api_tokens.c.expires_ms > now_ms)
    ).first()
    return User(*row) if row else None


def purge_expired_tokens(conn: Connection, now_ms: int) -> int:
    return conn.execute(delete(api_tokens).where(api_tokens.c.expires_ms <= now_ms)).rowcount
