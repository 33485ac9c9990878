"""Wire format of the vehicle link: JSON bytes <-> domain messages, in both directions.

Everything that can be wrong with a payload's *shape* is caught here and raised as a
`WireError` carrying one of the rejection reasons, so ingest can count and dead-letter it.
Whether a signal's *value* is acceptable is the signal catalog's business, not the codec's.

Example:
    payload = encode_telemetry(seq=7, ts_ms=1_700_000_000_000, signals={"Vehicle.Speed": 42.0})
    decode_telemetry("1M8GDM9AXKP042788", payload).signals   # {"Vehicle.Speed": 42.0}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

MALFORMED_JSON: Final = "malformed_json"
INVALID_ENVELOPE: Final = "invalid_envelope"

ONLINE: Final = "online"
OFFLINE: Final = "offline"


class WireError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TelemetryMessage:
    vin: str
    seq: int
    ts_ms: int
    signals: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventMessage:
    vin: str
    seq: int
    ts_ms: int
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusMessage:
    vin: str
    online: bool
    ts_ms: int | None


def _load_object(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(MALFORMED_JSON, f"payload is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError(INVALID_ENVELOPE, f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def _non_negative_int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is not int or value < 0:
        raise WireError(INVALID_ENVELOPE, f"'{key}' must be a non-negative integer, got {value!r}")
    return value


def decode_telemetry(vin: str, payload: bytes) -> TelemetryMessage:
    obj = _load_object(payload)
    signals = obj.get("signals")
    if not isinstance(signals, dict) or not signals:
        raise WireError(INVALID_ENVELOPE, "'signals' must be a non-empty object of VSS path -> value")
    return TelemetryMessage(vin, _non_negative_int(obj, "seq"), _non_negative_int(obj, "ts"), signals)


def decode_event(vin: str, payload: bytes) -> EventMessage:
    obj = _load_object(payload)
    kind, data = obj.get("type"), obj.get("data", {})
    if not isinstance(kind, str) or not kind or len(kind) > 64:
        raise WireError(INVALID_ENVELOPE, "'type' must be a non-empty string of at most 64 characters")
    if not isinstance(data, dict):
        raise WireError(INVALID_ENVELOPE, "'data' must be an object")
    return EventMessage(vin, _non_negative_int(obj, "seq"), _non_negative_int(obj, "ts"), kind, data)


def decode_status(vin: str, payload: bytes) -> StatusMessage:
    obj = _load_object(payload)
    state = obj.get("state")
    if state not in (ONLINE, OFFLINE):
        raise WireError(INVALID_ENVELOPE, f"'state' must be 'online' or 'offline', got {state!r}")
    ts = obj.get("ts")
    return StatusMessage(vin, state == ONLINE, ts if type(ts) is int and ts >= 0 else None)


def encode_telemetry(seq: int, ts_ms: int, signals: dict[str, Any]) -> bytes:
    return json.dumps({"seq": seq, "ts": ts_ms, "signals": signals}, separators=(",", ":")).encode()


def encode_event(seq: int, ts_ms: int, type_: str, data: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"seq": seq, "ts": ts_ms, "type": type_, "data": data or {}},
                      separators=(",", ":")).encode()


def encode_status(online: bool, ts_ms: int | None = None) -> bytes:
    body: dict[str, Any] = {"state": ONLINE if online else OFFLINE}
    if ts_ms is not None:
        body["ts"] = ts_ms
    return json.dumps(body, separators=(",", ":")).encode()
