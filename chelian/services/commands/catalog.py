"""What can be commanded, by whom, with which arguments - one table read by cloud and car alike.

The car is the authority (it checks the role of the key that signed a command against this
table before acting); the cloud reads the same table only to refuse early what the car would
refuse anyway, e.g. the platform key asking to enrol a key. Keeping both sides on one table
means a new command type is one row, not two diverging `if` chains.

Example:
    spec = COMMANDS["honk_flash"]
    spec.allows(PLATFORM)                       # True
    spec.normalise({"seconds": 5})              # {"seconds": 5.0}
    COMMANDS["enrol_key"].allows(PLATFORM)      # False: only owners change the whitelist
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

# --- roles a key can have in a car's whitelist ----------------------------------------

OWNER: Final = "owner"
DRIVER: Final = "driver"
PLATFORM: Final = "platform"
GUEST: Final = "guest"
ROLES: Final = (OWNER, DRIVER, PLATFORM, GUEST)

# --- why a car refuses or fails a command (shown by the API as `reason`) --------------

MALFORMED: Final = "malformed"
BAD_SIGNATURE: Final = "bad_signature"
UNKNOWN_KEY: Final = "unknown_key"
KEY_NOT_VALID_NOW: Final = "key_not_valid_now"
WRONG_VIN: Final = "wrong_vin"
NOT_YET_VALID: Final = "not_yet_valid"
EXPIRED: Final = "expired"
REPLAYED: Final = "replayed"
INSUFFICIENT_ROLE: Final = "insufficient_role"
UNSAFE: Final = "unsafe"
ACTUATION_FAILED: Final = "actuation_failed"
SUPERSEDED: Final = "superseded"

REASONS: Final[Mapping[str, str]] = MappingProxyType({
    MALFORMED: "the car could not read the command (bad JSON, unknown type or invalid arguments)",
    BAD_SIGNATURE: "the signature does not match the command bytes",
    UNKNOWN_KEY: "the signing key is not in the car's whitelist",
    KEY_NOT_VALID_NOW: "the signing key is revoked or outside its validity window",
    WRONG_VIN: "the command was signed for another car",
    NOT_YET_VALID: "the command's issue time is in the car's future (clock skew)",
    EXPIRED: "the command reached the car after its expiry",
    REPLAYED: "the car has already seen this key's counter",
    INSUFFICIENT_ROLE: "the signing key's role may not give this command",
    UNSAFE: "refused for safety: the car did not become stationary before the command expired",
    ACTUATION_FAILED: "the car tried but could not do it",
    SUPERSEDED: "a later mobilise cancelled this immobilise while it waited for the car to stop",
})


class ArgsError(ValueError):
    """Arguments that do not fit a command's schema (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: JSON type, bounds, and whether it may be left out."""

    kind: type
    required: bool = True
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None

    def check(self, name: str, value: Any) -> Any:
        if self.kind is float and type(value) in (int, float):
            value = float(value)
        if type(value) is not self.kind:  # bool is not int here: `True` is no counter
            raise ArgsError(f"{name} must be a {self.kind.__name__}, got {type(value).__name__}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ArgsError(f"{name} must be between {self.low:g} and {self.high:g}, got {value}")
        if self.choices and value not in self.choices:
            raise ArgsError(f"{name} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ArgsError(f"{name} is not well-formed: {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    roles: frozenset[str]
    summary: str
    args: Mapping[str, Arg] = field(default_factory=dict)

    def allows(self, role: str) -> bool:
        return role in self.roles

    def normalise(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validated arguments with defaults filled in, so equal requests hash equally."""
        if not isinstance(args, Mapping):
            raise ArgsError("args must be an object")
        unknown = sorted(set(args) - set(self.args))
        if unknown:
            raise ArgsError(f"{self.name} takes no argument {', '.join(unknown)}")
        out: dict[str, Any] = {}
        for name, spec in self.args.items():
            if name in args:
                out[name] = spec.check(name, args[name])
            elif spec.required:
                raise ArgsError(f"{self.name} needs argument {name}")
            elif spec.default is not None:
                out[name] = spec.default
        return out


KID_PATTERN: Final = r"[A-Za-z0-9_-]{22}"
PUBLIC_KEY_PATTERN: Final = r"[A-Za-z0-9_-]{43}"
_EPOCH_MS = Arg(int, required=False, low=0, high=2**53)

TRACKING_MIN_INTERVAL_MS: Final = 100
"""Faster than 10 Hz adds nothing a map can show and costs the car's data plan."""
TRACKING_MAX_INTERVAL_MS: Final = 60_000
TRACKING_DEFAULT_INTERVAL_MS: Final = 1_000
TRACKING_DEFAULT_DURATION_S: Final = 600
TRACKING_MAX_DURATION_S: Final = 24 * 3600
"""The car stops tracking by itself after this at the latest, so a lost "stop" cannot drain it."""

_ALL = frozenset(ROLES)
_TRUSTED = frozenset({OWNER, DRIVER, PLATFORM})
_OWNER_OR_PLATFORM = frozenset({OWNER, PLATFORM})
_OWNER_ONLY = frozenset({OWNER})

COMMANDS: Final[Mapping[str, CommandSpec]] = MappingProxyType({spec.name: spec for spec in (
    CommandSpec("lock", _ALL, "lock every door"),
    CommandSpec("unlock", _ALL, "unlock every door"),
    CommandSpec("locate", _TRUSTED, "report position, heading and speed in the ack"),
    CommandSpec("honk_flash", _ALL, "sound the horn and flash the lights",
                {"seconds": Arg(float, required=False, default=3.0, low=1, high=30)}),
    CommandSpec("immobilise", _OWNER_OR_PLATFORM, "stop the engine from starting (waits until stationary)"),
    CommandSpec("mobilise", _OWNER_OR_PLATFORM, "allow the engine to start again"),
    CommandSpec("clear_dtcs", _OWNER_OR_PLATFORM, "clear stored diagnostic trouble codes (resets readiness)"),
    CommandSpec("set_tracking", _OWNER_OR_PLATFORM,
                "report position, heading and speed every interval_ms for duration_s (0 s: stop now)",
                {"interval_ms": Arg(int, required=False, default=TRACKING_DEFAULT_INTERVAL_MS,
                                    low=TRACKING_MIN_INTERVAL_MS, high=TRACKING_MAX_INTERVAL_MS),
                 "duration_s": Arg(int, required=False, default=TRACKING_DEFAULT_DURATION_S,
                                   low=0, high=TRACKING_MAX_DURATION_S)}),
    CommandSpec("enrol_key", _OWNER_ONLY, "add a public key to the car's whitelist (or renew its window)",
                {"kid": Arg(str, pattern=KID_PATTERN), "pub": Arg(str, pattern=PUBLIC_KEY_PATTERN),
                 "role": Arg(str, choices=ROLES), "nbf": _EPOCH_MS, "exp": _EPOCH_MS}),
    CommandSpec("revoke_key", _OWNER_ONLY, "remove a key from the car's whitelist",
                {"kid": Arg(str, pattern=KID_PATTERN)}),
)})


def spec_for(command_type: str) -> CommandSpec:
    """The command's row; ArgsError naming the known types when there is none."""
    spec = COMMANDS.get(command_type)
    if spec is None:
        raise ArgsError(f"unknown command type {command_type!r}; known: {', '.join(COMMANDS)}")
    return spec
