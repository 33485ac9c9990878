"""Signal values <-> the two value columns (`value_num`, `value_text`).

Telemetry and latest_state keep one narrow row per sample, so a value has to fit one of two
columns whatever its VSS datatype. The catalog decides which: numbers and booleans go to
`value_num` (so SQL can average, bucket and compare them), strings and string arrays to
`value_text` (arrays as JSON). Ingest writes with `encode_value`, the API reads with
`decode_value`; keeping both here is what guarantees a value comes back with its type.

Telemetry history is stored differently, one JSON object per message (native JSON types);
`coerce_value` brings a value read back from JSON to the signal's Python type, because not
every dialect keeps JSON's types on the way out (SQLite's json_extract turns true into 1).

Example:
    encode_value(catalog.get("Vehicle.IsMoving"), True)           # (1.0, None)
    decode_value(catalog.get("Vehicle.IsMoving"), 1.0, None)      # True
    encode_value(catalog.get("Vehicle.Diagnostics.DTCList"), ["P0301"])  # (None, '["P0301"]')
"""

from __future__ import annotations

import json
from typing import Any

from chelian.signals import FLOAT_TYPES, INT_BOUNDS, Signal

Value = bool | int | float | str | list[str] | None


def encode_value(signal: Signal, value: Any) -> tuple[float | None, str | None]:
    """Return `(value_num, value_text)` for a value already checked by the catalog.

    Raises TypeError for a value that cannot be stored under the signal's datatype, so a
    caller that skipped `Catalog.check` fails loudly instead of storing garbage.
    """
    t = signal.datatype
    if value is None:
        return None, None
    if t == "boolean":
        if not isinstance(value, bool):
            raise TypeError(f"{signal.path} expects boolean, got {type(value).__name__}")
        return (1.0 if value else 0.0), None
    if t in INT_BOUNDS or t in FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{signal.path} expects {t}, got {type(value).__name__}")
        return float(value), None
    if t == "string":
        if not isinstance(value, str):
            raise TypeError(f"{signal.path} expects string, got {type(value).__name__}")
        return None, value
    if t == "string[]":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{signal.path} expects a list of strings")
        return None, json.dumps(list(value), separators=(",", ":"))
    raise TypeError(f"{signal.path} has datatype {t} that chelian cannot store")


def decode_value(signal: Signal, num: float | None, text: str | None) -> Value:
    """The typed Python value stored in the two columns (None if nothing was stored)."""
    t = signal.datatype
    if t == "boolean":
        return None if num is None else bool(num)
    if t in INT_BOUNDS:
        return None if num is None else int(round(num))
    if t in FLOAT_TYPES:
        return None if num is None else float(num)
    if t == "string":
        return text
    if t == "string[]":
        return None if text is None else list(json.loads(text))
    raise TypeError(f"{signal.path} has datatype {t} that chelian cannot decode")


def coerce_value(signal: Signal, raw: Any) -> Value:
    """The typed Python value for a JSON-decoded `raw` (1 -> True for booleans, '["a"]' -> ["a"])."""
    t = signal.datatype
    if raw is None:
        return None
    if t == "boolean":
        return bool(raw)
    if t in INT_BOUNDS:
        return int(raw)
    if t in FLOAT_TYPES:
        return float(raw)
    if t == "string":
        return str(raw)
    if t == "string[]":
        return [str(v) for v in (json.loads(raw) if isinstance(raw, str) else raw)]
    raise TypeError(f"{signal.path} has datatype {t} that chelian cannot decode")
