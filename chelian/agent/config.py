"""A real car's agent configuration: one TOML file, validated before anything starts.

What provisioning hands a car (VIN, broker URL, secret), where its signals come from (a CAN
bus with a DBC and a mapping, or a recorded CAN log replayed), where it keeps its state
(queue, sequence numbers, command keystore), and optional per-signal policy overrides.
Validation happens up front so a typo is a one-line error at start, not a silent car.

Example (`/etc/chelian/agent.toml`):

    vin = "1M8GDM9AXKP042788"
    mqtt_url = "mqtt://cloud.example.com:1883"
    password = "the secret shown once at provisioning"
    data_dir = "/var/lib/chelian-agent"
    platform_key = "base64url public key of the cloud's command signing key"  # optional

    [source]
    kind = "can"            # or "replay", with log = "drive.log"
    interface = "socketcan"
    channel = "can0"
    mapping = "vw_mqb"      # a built-in mapping or a YAML file; dbc = ... overrides its DBC

    [policy."Vehicle.Speed"]
    deadband = 2.0

    [actuators]             # optional; see docs/agent.md
    can = true              # use the mapping's `actions:` on the live bus (default)
    hook_timeout_s = 10

    [actuators.hooks]       # a program per command, run without a shell; exit 0 = done
    lock = ["/usr/local/bin/car-lock"]
    honk_flash = ["/usr/local/bin/car-horn", "--flash"]
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chelian.agent.actuators import ACTIONS
from chelian.agent.publisher import PolicyTable, SignalPolicy
from chelian.agent.runtime import LinkSettings
from chelian.errors import ChelianError, ConfigError
from chelian.vin import normalise_vin


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanSource(_Strict):
    kind: Literal["can"]
    interface: str = "socketcan"
    channel: str = "can0"
    mapping: str
    dbc: str | None = None


class ReplaySource(_Strict):
    kind: Literal["replay"]
    log: Path
    mapping: str
    dbc: str | None = None
    realtime: bool = True
    """Replay at the recorded pace (False: as fast as it decodes)."""


class PolicyOverride(_Strict):
    min_interval_s: float = Field(0.0, ge=0)
    max_interval_s: float = Field(60.0, gt=0)
    deadband: float = Field(0.0, ge=0)


class ActuatorsConfig(_Strict):
    can: bool = True
    """Send the CAN mapping's `actions:` on the live bus (a replayed log never sends)."""
    hook_timeout_s: float = Field(10.0, gt=0, le=300)
    hooks: dict[str, list[str]] = Field(default_factory=dict)
    """command -> argv of the program that does it (no shell)."""

    @field_validator("hooks")
    @classmethod
    def _known_commands(cls, hooks: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, argv in hooks.items():
            if name not in ACTIONS:
                raise ValueError(f"no command {name!r} can have a hook; these can: {', '.join(ACTIONS)}")
            if not argv or not argv[0]:
                raise ValueError(f"hook {name}: give the program and its arguments, e.g. "
                                 f'{name} = ["/usr/local/bin/car-{name}"]')
        return hooks


class AgentConfig(_Strict):
    vin: str
    mqtt_url: str
    username: str | None = None
    """Defaults to the VIN, as chelian provisions cars."""
    password: str
    data_dir: Path
    rate_hz: float = Field(1.0, gt=0, le=50)
    mqtt_version: Literal[4, 5] = 4
    keepalive_s: int = Field(30, ge=5, le=60)
    replay_rate_per_s: float = Field(40.0, gt=0)
    replay_burst: int = Field(400, ge=1)
    platform_key: str | None = None
    owner_key: str | None = None
    source: Annotated[CanSource | ReplaySource, Field(discriminator="kind")]
    policy: dict[str, PolicyOverride] = Field(default_factory=dict)
    actuators: ActuatorsConfig = Field(default_factory=ActuatorsConfig)

    @field_validator("vin")
    @classmethod
    def _valid_vin(cls, vin: str) -> str:
        try:
            return normalise_vin(vin)
        except ChelianError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("mqtt_url")
    @classmethod
    def _broker(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"must look like mqtt://host:port, got {url!r}")
        return url

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read agent config {path}: {exc}") from exc
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid agent config {path}: {problems}") from None
        for pattern, p in config.policy.items():
            if p.max_interval_s <= p.min_interval_s:
                raise ConfigError(f"invalid agent config {path}: policy {pattern!r}: "
                                  "max_interval_s must be greater than min_interval_s")
        for name, argv in config.actuators.hooks.items():
            program = argv[0]
            found = shutil.which(program) if os.sep not in program else program
            if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
                raise ConfigError(f"invalid agent config {path}: actuators.hooks.{name}: {program} is not "
                                  "an executable file")
        return config

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def keystore_path(self) -> Path:
        return self.data_dir / "commands.json"

    def link(self) -> LinkSettings:
        parts = urlsplit(self.mqtt_url)
        return LinkSettings(parts.hostname or "127.0.0.1", parts.port or 1883, self.username or self.vin,
                            self.password, mqtt_version=self.mqtt_version, keepalive_s=self.keepalive_s,
                            replay_rate_per_s=self.replay_rate_per_s, replay_burst=self.replay_burst)

    def policy_table(self) -> PolicyTable:
        overrides = {pattern: SignalPolicy(p.min_interval_s, p.max_interval_s, p.deadband)
                     for pattern, p in self.policy.items()}
        return PolicyTable.standard().with_rules(overrides)
