"""Settings: one validated object built from the environment, a TOML file, or CLI flags.

Nothing is read at import time: `Settings.load()` is called by the CLI and by tests, so a
test can build as many independent platforms as it likes.

Example:
    settings = Settings.load(data_dir="/tmp/c1", http_port=8081)
    settings.database_url   # sqlite:////tmp/c1/chelian.db (embedded default)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chelian.errors import ConfigError

DEFAULT_DATA_DIR = Path.home() / ".chelian"


class Settings(BaseSettings):
    """Everything the platform needs to start; every field has a safe local default."""

    model_config = SettingsConfigDict(env_prefix="CHELIAN_", extra="forbid")

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    """None means the embedded default: SQLite (WAL) in `data_dir`."""
    mqtt_url: str | None = None
    """None means the embedded amqtt broker that chelian runs itself on `mqtt_port`."""
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1884, ge=1, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    http_workers: int = Field(default=1, ge=1, le=64)
    """API processes `chelian serve` runs on `http_port` (PostgreSQL only; SQLite keeps one)."""
    public_mqtt_url: str | None = None
    """The broker address handed to cars when they are provisioned (defaults to mqtt_url)."""

    ingest_username: str = "chelian-ingest"
    ingest_password: str | None = None
    """The platform's own broker credentials; generated and kept in data_dir when unset."""
    ingest_share_group: str = "chelian-ingest"
    ingest_batch_max: int = Field(default=2000, ge=1)
    ingest_batch_wait_ms: int = Field(default=50, ge=0)

    max_payload_bytes: int = Field(default=16384, ge=64)
    max_messages_per_s: float = Field(default=50.0, gt=0)
    """Per-car sustained message rate; bursts up to `max_message_burst` are allowed."""
    max_message_burst: int = Field(default=500, ge=1)
    max_clock_skew_s: int = Field(default=300, ge=0)
    """Device timestamps further than this in the future are rejected."""

    telemetry_retention_days: float = Field(default=30.0, gt=0)
    purge_batch_rows: int = Field(default=5000, ge=1)
    purge_interval_s: float = Field(default=3600.0, gt=0)

    token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    vss_json: Path | None = None
    """Optional full VSS JSON export that extends the built-in signal catalog."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme = urlsplit(url).scheme
        if scheme.startswith("postgres"):
            # One driver for the whole project: psycopg 3 (COPY for ingest, sync for the API).
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        if scheme.startswith("sqlite"):
            return url
        raise ValueError(f"unsupported database {scheme!r}: use postgresql://... or sqlite:///...")

    @field_validator("mqtt_url", "public_mqtt_url")
    @classmethod
    def _known_broker(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"broker URL must look like mqtt://host:port, got {url!r}")
        return url

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        return self

    # --- derived values -------------------------------------------------------------

    @property
    def embedded_broker(self) -> bool:
        return self.mqtt_url is None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'chelian.db'}"

    @property
    def broker_host_port(self) -> tuple[str, int]:
        if self.mqtt_url is None:
            return self.mqtt_host, self.mqtt_port
        parts = urlsplit(self.mqtt_url)
        return parts.hostname or "127.0.0.1", parts.port or 1883

    @property
    def car_mqtt_url(self) -> str:
        if self.public_mqtt_url:
            return self.public_mqtt_url
        host, port = self.broker_host_port
        return f"mqtt://{host}:{port}"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from (lowest to highest precedence) a TOML file, env, explicit overrides.

        Overrides whose value is None are ignored so CLI flags left unset fall through.
        """
        values: dict[str, Any] = {}
        if config_file is not None:
            try:
                values.update(tomllib.loads(Path(config_file).read_text()))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        try:
            env_only = cls()  # env vars and defaults
        except Exception as exc:  # pydantic ValidationError: turn into one readable message
            raise ConfigError(_readable(exc)) from exc
        merged = {k: v for k, v in env_only.model_dump().items() if k in env_only.model_fields_set}
        merged = {**values, **merged, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return cls.model_validate(merged)
        except Exception as exc:
            raise ConfigError(_readable(exc)) from exc


def _readable(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    lines = [f"CHELIAN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in errors()]
    return "invalid settings:\n  " + "\n  ".join(lines)
