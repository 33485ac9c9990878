"""The platform's own broker identity: one username/password shared by cloud components.

Ingest workers and the command relay connect to the broker as this account. It may
subscribe and publish anywhere under `v1/vehicles/` (including `$share/{group}/...`
shared subscriptions), which no car may.

The password comes from `settings.ingest_password` when an operator sets one (so an
external Mosquitto can be configured by hand); otherwise chelian generates a random secret
once and keeps it in `data_dir/broker-service-password` (mode 0600), so the API, the
ingest and the embedded broker - separate processes - all agree on it without anyone
having to configure anything.

Example:
    account = service_account(settings)
    client.username_pw_set(account.username, account.password)
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from chelian.config import Settings
from chelian.errors import ConfigError
from chelian.link.topics import ROOT

PASSWORD_FILE = "broker-service-password"
SERVICE_PREFIX = f"{ROOT}/"
"""Everything the service account may touch starts with this (`v1/vehicles/`)."""


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    username: str
    password: str = field(repr=False)


def service_account(settings: Settings) -> ServiceAccount:
    """The broker identity for this platform instance (creating its secret on first use)."""
    if settings.ingest_password:
        return ServiceAccount(settings.ingest_username, settings.ingest_password)
    return ServiceAccount(settings.ingest_username, _read_or_create(settings.data_dir / PASSWORD_FILE))


def _read_or_create(path: Path) -> str:
    """Read the stored secret, or create it atomically.

    Several processes (API, ingest, broker) may start at the same moment: the secret is
    written to a private temporary file and hard-linked into place, so a reader never sees a
    half-written file and exactly one writer wins; the losers read the winner's secret.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race; use its secret
        finally:
            tmp.unlink(missing_ok=True)
        return _read(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the broker service password in {path}: {exc}") from exc


def _read(path: Path) -> str:
    secret = path.read_text().strip()
    if not secret:
        raise ConfigError(f"{path} is empty: delete it to generate a new broker service password")
    return secret
