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
from chelian.signals import read_vss_json

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
    flood_sample_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    """A car's `rate_limited` and `payload_too_large` refusals are all counted, but only the first
    of each such interval (per car and reason) is dead-lettered and logged, with the number left out."""
    max_clock_skew_s: int = Field(default=300, ge=0)
    """Device timestamps further than this in the future are rejected."""

    telemetry_retention_days: float = Field(default=30.0, gt=0)
    purge_batch_rows: int = Field(default=5000, ge=1)
    purge_interval_s: float = Field(default=3600.0, gt=0)

    token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    vss_json: Path | None = None
    """Optional full VSS JSON export that extends the built-in signal catalog."""

    # --- detector thresholds: what counts as a crash, a theft, a harsh stop (docs/safety.md) ---
    crash_accel_threshold_ms2: float = Field(default=40.0, gt=0, le=1000)
    """|longitudinal| or |lateral| acceleration that counts as an impact (40 m/s^2 is about 4 g)."""
    crash_min_speed_kmh: float = Field(default=20.0, gt=0, le=500)
    """An impact counts only if the car went at least this fast just before it..."""
    crash_stopped_kmh: float = Field(default=5.0, ge=0, le=500)
    """...and its speed collapsed to this or less within `crash_collapse_window_ms`."""
    crash_collapse_window_ms: int = Field(default=2000, gt=0, le=60_000)
    crash_grace_s: float = Field(default=30.0, ge=0, le=3600)
    """How long the car or owner may cancel a false alarm before anyone is notified."""
    unauthorised_movement_speed_kmh: float = Field(default=5.0, gt=0, le=500)
    unauthorised_movement_radius_m: float = Field(default=50.0, gt=0, le=100_000)
    """How far a locked, switched-off car may seem to move (GPS jitter is 5-20 m) before it alerts."""
    stolen_movement_radius_m: float = Field(default=50.0, gt=0, le=100_000)
    """A stolen car's move is announced when it is this far from the last announced position."""
    stolen_tracking_interval_ms: int = Field(default=1000, ge=100, le=60_000)
    """How often a car reported stolen sends its position (the `set_tracking` command)."""
    stolen_tracking_duration_s: int = Field(default=6 * 3600, ge=60, le=86_400)
    """After this the car stops high-rate tracking by itself, even if recovery never reached it."""
    trip_harsh_braking_ms2: float = Field(default=3.5, gt=0, le=100)
    """Deceleration (a positive number) that counts as one harsh braking in a trip's score."""
    trip_harsh_acceleration_ms2: float = Field(default=3.0, gt=0, le=100)
    trip_harsh_rearm_ms2: float = Field(default=2.0, gt=0, le=100)
    """A harsh event is counted once, until |acceleration| falls below this again."""
    trip_moving_kmh: float = Field(default=5.0, gt=0, le=100)
    trip_idle_end_s: float = Field(default=600.0, gt=0)
    """A trip ends after this long without motion (ignition left on)."""
    trip_gap_s: float = Field(default=1800.0, gt=0)
    """A trip ends when the car is silent this long."""
    geofence_margin_m: float = Field(default=25.0, ge=0, le=10_000)
    """Hysteresis at a fence's border, so GPS jitter on the line does not flap."""
    geofence_confirm_fixes: int = Field(default=2, ge=1, le=100)
    """Consecutive fixes on the other side before an enter/exit counts."""
    health_low_tyre_kpa: float = Field(default=200.0, gt=0, le=1000)
    health_low_battery_v: float = Field(default=12.0, gt=0, le=60)
    """The health report warns below these (tyre pressure, 12 V battery voltage)."""

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

    @field_validator("vss_json")
    @classmethod
    def _readable_vss_export(cls, path: Path | None) -> Path | None:
        """Fail at start, not at the first `Catalog.load`, on a missing or malformed export."""
        if path is None:
            return None
        path = path.expanduser()
        try:
            read_vss_json(path)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return path

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser()
        return self

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> Settings:
        if self.crash_stopped_kmh >= self.crash_min_speed_kmh:
            raise ValueError(f"CHELIAN_CRASH_STOPPED_KMH ({self.crash_stopped_kmh:g}) must be below "
                             f"CHELIAN_CRASH_MIN_SPEED_KMH ({self.crash_min_speed_kmh:g})")
        harsh = min(self.trip_harsh_braking_ms2, self.trip_harsh_acceleration_ms2)
        if self.trip_harsh_rearm_ms2 >= harsh:
            raise ValueError(f"CHELIAN_TRIP_HARSH_REARM_MS2 ({self.trip_harsh_rearm_ms2:g}) must be below "
                             f"both harsh thresholds (the lower is {harsh:g})")
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

    @property
    def car_broker_host_port(self) -> tuple[str, int]:
        """Where cars connect: on a two-listener Mosquitto not where the platform itself does."""
        parts = urlsplit(self.car_mqtt_url)
        return parts.hostname or "127.0.0.1", parts.port or 1883

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
    lines = [f"CHELIAN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
             if e["loc"]
             else e["msg"].removeprefix("Value error, ")
             for e in errors()]
    return "invalid settings:\n  " + "\n  ".join(lines)
