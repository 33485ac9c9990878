"""Slow hashes for secrets we must check but never keep.

Two formats, each chosen for who has to verify it:

* Car MQTT secrets use PBKDF2-HMAC-SHA512 in Mosquitto's own `$7$` password-file format, so
  `chelian mosquitto config` can write a password file straight from the database without
  ever knowing a plaintext, and the embedded broker checks the very same strings.
  Car secrets are 32 random bytes (256 bits), so the iteration count guards against a
  stolen database, not against guessing; it stays modest because the broker pays it on
  every connect.
* People's passwords use scrypt (memory-hard, in the standard library).

Example:
    stored = hash_car_secret("s3cret")
    verify_car_secret("s3cret", stored)   # True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

CAR_HASH_ITERATIONS = 20_000
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_secret() -> str:
    """A fresh random secret for a car or a token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def hash_car_secret(secret: str, iterations: int = CAR_HASH_ITERATIONS) -> str:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_car_secret(secret: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt_b64, digest_b64 = stored.split("$")
        if kind != "7":
            return False
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        candidate = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, int(iterations), len(digest))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, digest)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt_hex, digest_hex = stored.split("$")
        if kind != "scrypt":
            return False
        digest = bytes.fromhex(digest_hex)
        candidate = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=len(digest)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, digest)


def token_digest(token: str) -> str:
    """Bearer tokens are random and long, so a plain SHA-256 is the right lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()
