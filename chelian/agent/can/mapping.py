"""Mapping files: which DBC signal becomes which VSS signal, and how.

A mapping is the only per-car knowledge the agent needs besides the DBC. It is YAML so an
owner can write one for their car with a text editor; it is validated completely before the
agent starts, against the signal catalog and the DBC, because a typo found on the road
(a signal that silently never arrives) costs far more than an error at startup. Every problem
is reported with its line, all at once.

File format (see mappings/*.yaml and README.md):

    dbc: vw_mqb                     # opendbc name, or a .dbc path relative to this file
    models: [VW Golf Mk7 2013-2020]  # informative
    signals:
      - {message: ESP_21, signal: ESP_v_Signal, vss: Vehicle.Speed}
      - {message: Kombi_02, signal: KBI_Kilometerstand, vss: Vehicle.TraveledDistance}
      - message: Gateway_73
        signal: GE_Fahrstufe
        vss: Vehicle.Powertrain.Transmission.CurrentGear
        map: {P: 0, R: -1, N: 0, D: 1}

Entry keys: message, signal, vss (required); scale, offset (applied to the DBC's physical
value, before unit conversion); unit_from (the unit the value is in, when the DBC has none or
a wrong one); unit_signal (another signal of the same message that names the unit, e.g. a
km/miles switch); map ({DBC choice name or raw integer: VSS value}); type (the VSS datatype,
checked against the catalog: documentation that cannot go stale).

An optional `actions:` section says how the car is commanded over the same bus: per command
(lock, unlock, honk_flash, immobilise, mobilise, clear_dtcs), the DBC messages to send with
their signal values (signals not named are sent as raw 0), optionally repeated, and
optionally a VSS signal of this mapping to watch for confirmation (see docs/agent.md):

    actions:
      lock:
        send: [{message: BODY_COMMAND, signals: {LOCK_REQUEST: lock}}]
        repeat: 3                   # default 1
        interval_ms: 50             # between repeats, default 100
        confirm: {vss: Vehicle.Cabin.Door.Row1.DriverSide.IsLocked, value: true, timeout_s: 2}
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml
from cantools.database.can import Database

from chelian.agent.actuators import ACTIONS
from chelian.agent.can import units
from chelian.signals import Catalog, Signal, SignalError

ENTRY_KEYS: Final = frozenset(
    {"message", "signal", "vss", "scale", "offset", "unit_from", "unit_signal", "map", "type"})
REQUIRED_KEYS: Final = ("message", "signal", "vss")
TOP_KEYS: Final = frozenset({"dbc", "description", "models", "signals", "actions"})
ACTION_KEYS: Final = frozenset({"send", "confirm", "repeat", "interval_ms"})
FRAME_KEYS: Final = frozenset({"message", "signals"})
CONFIRM_KEYS: Final = frozenset({"vss", "value", "timeout_s"})
MAX_REPEAT: Final = 50
OUTPUT_TYPES: Final = frozenset({"boolean", "string", "float", "double", "uint8", "uint16", "uint32",
                                 "uint64", "int8", "int16", "int32", "int64"})
_LINE: Final = "__line__"


class MappingError(ValueError):
    """A mapping file that cannot be used; `problems` holds one `file:line: reason` per fault."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in CAN mapping:\n  " + "\n  ".join(problems))


@dataclass(frozen=True, slots=True)
class SignalMap:
    """One mapping entry. `map` is a tuple of (DBC value, VSS value) pairs so entries stay hashable."""

    message: str
    signal: str
    vss: str
    line: int = 0
    scale: float = 1.0
    offset: float = 0.0
    unit_from: str | None = None
    unit_signal: str | None = None
    map: tuple[tuple[str | int, Any], ...] = ()
    type: str | None = None


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """One frame of an action: a DBC message and the values of the signals it sets."""

    message: str
    signals: tuple[tuple[str, Any], ...]
    line: int = 0


@dataclass(frozen=True, slots=True)
class ConfirmSpec:
    """The action counts as done once `vss` reads `value`, within `timeout_s`."""

    vss: str
    value: Any
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class ActionMap:
    action: str
    frames: tuple[FrameSpec, ...]
    line: int = 0
    confirm: ConfirmSpec | None = None
    repeat: int = 1
    interval_ms: int = 100


@dataclass(frozen=True, slots=True)
class Mapping:
    entries: tuple[SignalMap, ...]
    source: str = "<mapping>"
    dbc: str | None = None
    description: str = ""
    models: tuple[str, ...] = field(default=())
    actions: tuple[ActionMap, ...] = field(default=())

    def action(self, name: str) -> ActionMap | None:
        return next((a for a in self.actions if a.action == name), None)

    def where(self, entry: SignalMap) -> str:
        return f"{self.source}:{entry.line}"

    def dbc_path(self) -> Path:
        """The DBC named by the file's `dbc:` key (relative paths are relative to the file)."""
        from chelian.agent.can.dbc import resolve_dbc

        if self.dbc is None:
            raise MappingError(self.source, [f"{self.source}: no `dbc:` key; pass the DBC path explicitly"])
        source = Path(self.source)
        return resolve_dbc(self.dbc, source.parent if source.is_file() else None)


def _did_you_mean(close: list[str]) -> str:
    return f" (did you mean {', '.join(close)}?)" if close else ""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping, for error messages."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[_LINE] = node.start_mark.line + 1
        return mapping


def builtin_mappings() -> list[str]:
    """Names of the mappings shipped with chelian (`vw_mqb`, ...)."""
    folder = resources.files("chelian.agent.can") / "mappings"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_mapping(name: str) -> Path:
    path = Path(str(resources.files("chelian.agent.can") / "mappings" / f"{name.removesuffix('.yaml')}.yaml"))
    if not path.is_file():
        available = ", ".join(builtin_mappings())
        raise FileNotFoundError(f"no built-in CAN mapping {name!r}; available: {available}")
    return path


def load_mapping(path: str | Path, dbc: Database | str | Path | None = None,
                 catalog: Catalog | None = None) -> Mapping:
    """Read and validate a mapping file (a built-in name such as "vw_mqb" works too).

    `dbc` is a cantools Database or a DBC path; without it the file's `dbc:` key is used, so
    the result has been checked against a DBC in every case.
    """
    p = Path(path)
    if not p.is_file() and p.suffix == "" and len(p.parts) == 1:
        p = builtin_mapping(str(path))
    mapping = parse_mapping(p.read_text(encoding="utf-8"), source=str(p), catalog=catalog)
    if not isinstance(dbc, Database):
        from chelian.agent.can.dbc import load_dbc

        dbc = load_dbc(dbc if dbc is not None else mapping.dbc_path())
    check_against_dbc(mapping, dbc)
    return mapping


def parse_mapping(text: str, source: str = "<mapping>", catalog: Catalog | None = None) -> Mapping:
    """Parse mapping YAML and check it against the catalog (not yet against a DBC)."""
    catalog = catalog or Catalog.builtin()
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or exc
        raise MappingError(source, [f"{source}{line}: not valid YAML: {reason}"]) from exc
    problems: list[str] = []
    header: dict[str, Any] = {}
    if isinstance(doc, list):
        raw_entries: Any = doc
    elif isinstance(doc, dict):
        header = doc
        for key in sorted(set(doc) - TOP_KEYS - {_LINE}, key=str):
            allowed = ", ".join(sorted(TOP_KEYS))
            problems.append(f"{source}:{doc[_LINE]}: unknown top-level key {key!r} (allowed: {allowed})")
        raw_entries = doc.get("signals")
    else:
        raise MappingError(source, [f"{source}: expected a list of entries or a mapping with `signals:`"])
    if not isinstance(raw_entries, list) or not raw_entries:
        raise MappingError(source, [*problems, f"{source}: `signals:` must be a non-empty list of entries"])
    entries = []
    for raw in raw_entries:
        entry = _parse_entry(raw, source, catalog, problems)
        if entry is not None:
            entries.append(entry)
    actions = _parse_actions(header.get("actions"), header.get(_LINE, 0), source, catalog, problems)
    produced = {e.vss for e in entries}
    for action in actions:
        if action.confirm is not None and action.confirm.vss not in produced:
            problems.append(f"{source}:{action.line}: {action.action} is confirmed by {action.confirm.vss}, "
                            "which no `signals:` entry of this mapping produces")
    if problems:
        raise MappingError(source, problems)
    dbc = header.get("dbc")
    models = header.get("models") or ()
    return Mapping(tuple(entries), source, str(dbc) if dbc is not None else None,
                   str(header.get("description") or ""), tuple(str(m) for m in models), tuple(actions))


def _parse_actions(raw: Any, line: int, source: str, catalog: Catalog,
                   problems: list[str]) -> list[ActionMap]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.append(f"{source}:{line}: `actions:` must map a command ({', '.join(ACTIONS)}) "
                        "to what to send")
        return []
    line = raw.pop(_LINE, line)
    out = []
    for name, spec in raw.items():
        where = f"{source}:{spec.get(_LINE, line) if isinstance(spec, dict) else line}"
        if name not in ACTIONS:
            close = difflib.get_close_matches(str(name), ACTIONS, n=1, cutoff=0.5)
            problems.append(f"{where}: unknown action {name!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                                  else f" (actions: {', '.join(ACTIONS)})"))
            continue
        if not isinstance(spec, dict):
            problems.append(f"{where}: action {name} must be a mapping with `send:`")
            continue
        action = _parse_action(name, spec, where, catalog, problems)
        if action is not None:
            out.append(action)
    return out


def _parse_action(name: str, spec: dict[str, Any], where: str, catalog: Catalog,
                  problems: list[str]) -> ActionMap | None:
    before = len(problems)
    line = spec.pop(_LINE, 0)
    for key in sorted(set(spec) - ACTION_KEYS, key=str):
        allowed = ", ".join(sorted(ACTION_KEYS))
        problems.append(f"{where}: action {name}: unknown key {key!r} (allowed: {allowed})")
    frames = []
    send = spec.get("send")
    if not isinstance(send, list) or not send:
        problems.append(f"{where}: action {name}: `send:` must be a non-empty list of "
                        "{message: ..., signals: {...}}")
        send = []
    for raw in send:
        frame = _parse_frame(name, raw, where, problems)
        if frame is not None:
            frames.append(frame)
    numbers = {}
    for key, default, low, high in (("repeat", 1, 1, MAX_REPEAT), ("interval_ms", 100, 0, 10_000)):
        value = spec.get(key, default)
        if type(value) is not int or not low <= value <= high:
            problems.append(f"{where}: action {name}: `{key}` must be a whole number from {low} to {high}")
        numbers[key] = value
    confirm = _parse_confirm(name, spec.get("confirm"), where, catalog, problems)
    if len(problems) > before:
        return None
    return ActionMap(name, tuple(frames), line, confirm, numbers["repeat"], numbers["interval_ms"])


def _parse_frame(name: str, raw: Any, where: str, problems: list[str]) -> FrameSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: action {name}: {raw!r} is not a {{message, signals}} mapping")
        return None
    line = raw.pop(_LINE, 0)
    where = f"{where.rsplit(':', 1)[0]}:{line}" if line else where
    for key in sorted(set(raw) - FRAME_KEYS, key=str):
        problems.append(f"{where}: action {name}: unknown key {key!r} in a frame (allowed: message, signals)")
    message, signals = raw.get("message"), raw.get("signals", {})
    if not isinstance(message, str) or not message:
        problems.append(f"{where}: action {name}: `message` is required and must be a DBC message name")
        return None
    if not isinstance(signals, dict):
        problems.append(f"{where}: action {name}: `signals` must map signal names to values")
        return None
    signals.pop(_LINE, None)
    pairs = []
    for signal, value in signals.items():
        if type(value) is bool:
            value = int(value)
        if type(value) not in (int, float, str) or (type(value) is float and not math.isfinite(value)):
            problems.append(f"{where}: action {name}: {message}.{signal} must be a number or a DBC "
                            "value name")
            continue
        pairs.append((str(signal), value))
    return FrameSpec(message, tuple(pairs), line)


def _parse_confirm(name: str, raw: Any, where: str, catalog: Catalog,
                   problems: list[str]) -> ConfirmSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "vss" not in raw or "value" not in raw:
        problems.append(f"{where}: action {name}: `confirm` must be {{vss: PATH, value: V, timeout_s: S}}")
        return None
    raw.pop(_LINE, None)
    for key in sorted(set(raw) - CONFIRM_KEYS, key=str):
        problems.append(f"{where}: action {name}: unknown key {key!r} in `confirm` (allowed: vss, value, "
                        "timeout_s)")
    vss, value, timeout = raw["vss"], raw["value"], raw.get("timeout_s", 2.0)
    if not isinstance(vss, str) or catalog.get(vss) is None:
        problems.append(f"{where}: action {name}: unknown VSS path {vss!r} in `confirm`")
        return None
    try:
        catalog.check(vss, value)
    except SignalError as exc:
        problems.append(f"{where}: action {name}: confirm value: {exc.detail}")
        return None
    if type(timeout) not in (int, float) or not 0 < timeout <= 60:
        problems.append(f"{where}: action {name}: `timeout_s` must be a number of seconds, above 0 "
                        "and at most 60")
        return None
    return ConfirmSpec(vss, value, float(timeout))


def _parse_entry(raw: Any, source: str, catalog: Catalog, problems: list[str]) -> SignalMap | None:
    if not isinstance(raw, dict):
        problems.append(f"{source}: entry {raw!r} is not a mapping of message/signal/vss")
        return None
    line = raw.pop(_LINE)
    where = f"{source}:{line}"
    before = len(problems)
    for key in sorted(set(raw) - ENTRY_KEYS, key=str):
        close = difflib.get_close_matches(str(key), ENTRY_KEYS, n=1)
        problems.append(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    for key in REQUIRED_KEYS:
        if not isinstance(raw.get(key), str) or not raw[key]:
            problems.append(f"{where}: `{key}` is required and must be a name")
    if len(problems) > before:
        return None
    vss = raw["vss"]
    signal = catalog.get(vss)
    if signal is None:
        close = difflib.get_close_matches(vss, [s.path for s in catalog], n=3, cutoff=0.6)
        problems.append(f"{where}: unknown VSS path {vss!r}" + _did_you_mean(close))
        return None
    numbers = {}
    for key in ("scale", "offset"):
        value = raw.get(key, 1.0 if key == "scale" else 0.0)
        if type(value) not in (int, float) or not math.isfinite(value) or (key == "scale" and value == 0):
            but = " other than 0" if key == "scale" else ""
            problems.append(f"{where}: `{key}` must be a finite number{but}")
        numbers[key] = float(value) if type(value) in (int, float) else 0.0
    declared = raw.get("type")
    if declared is not None and declared != signal.datatype:
        problems.append(f"{where}: `type: {declared}` but the catalog says {vss} is {signal.datatype}")
    if signal.datatype not in OUTPUT_TYPES:
        problems.append(f"{where}: {vss} is {signal.datatype}, which a CAN signal cannot produce")
    table = _parse_table(raw.get("map"), raw, signal, catalog, where, problems)
    unit_from, unit_signal = raw.get("unit_from"), raw.get("unit_signal")
    if unit_from is not None:
        _check_unit(unit_from, signal, where, problems)
    if unit_from is not None and unit_signal is not None:
        problems.append(f"{where}: give either `unit_from` or `unit_signal`, not both")
    if unit_signal is not None and not isinstance(unit_signal, str):
        problems.append(f"{where}: `unit_signal` must be a signal name")
    if not table and signal.datatype == "string":
        problems.append(f"{where}: {vss} is a string; a `map:` from DBC values to its allowed values "
                        "is needed")
    if len(problems) > before:
        return None
    return SignalMap(raw["message"], raw["signal"], vss, line, numbers["scale"], numbers["offset"],
                     unit_from, unit_signal, table, declared)


def _parse_table(table: Any, raw: dict[str, Any], signal: Signal, catalog: Catalog, where: str,
                 problems: list[str]) -> tuple[tuple[str | int, Any], ...]:
    if table is None:
        return ()
    if not isinstance(table, dict):
        problems.append(f"{where}: `map` must be a mapping of DBC value -> VSS value")
        return ()
    table.pop(_LINE, None)
    if not table:
        problems.append(f"{where}: `map` is empty")
    clash = sorted(k for k in ("scale", "offset", "unit_from", "unit_signal") if k in raw)
    if clash:
        problems.append(f"{where}: `map` gives the VSS value directly; drop {', '.join(clash)}")
    pairs: list[tuple[str | int, Any]] = []
    for key, value in table.items():
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) not in (str, int, bool):
            problems.append(f"{where}: map key {key!r} must be a DBC choice name or a raw integer")
            continue
        try:
            catalog.check(signal.path, value)
        except SignalError as exc:
            problems.append(f"{where}: map value for {key!r}: {exc.detail}")
            continue
        pairs.append((int(key) if type(key) is bool else key, value))
    return tuple(pairs)


def _check_unit(name: Any, signal: Signal, where: str, problems: list[str]) -> None:
    if not isinstance(name, str) or units.lookup(name) is None:
        known = ", ".join(u.name for u in units.UNITS)
        problems.append(f"{where}: unknown unit {name!r} in `unit_from` (known: {known})")
    elif signal.unit is not None:
        try:
            units.converter(name, signal.unit)
        except units.UnitError as exc:
            problems.append(f"{where}: {exc}")


def check_against_dbc(mapping: Mapping, db: Database, catalog: Catalog | None = None) -> None:
    """Raise MappingError unless every entry names a real message/signal of `db` and can convert."""
    catalog = catalog or Catalog.builtin()
    problems: list[str] = []
    names = [m.name for m in db.messages]
    for entry in mapping.entries:
        where = mapping.where(entry)
        try:
            message = db.get_message_by_name(entry.message)
        except KeyError:
            close = difflib.get_close_matches(entry.message, names, n=3, cutoff=0.6)
            problems.append(f"{where}: the DBC has no message {entry.message!r}"
                            + _did_you_mean(close))
            continue
        signals = {s.name: s for s in message.signals}
        for name in (entry.signal, entry.unit_signal):
            if name is not None and name not in signals:
                close = difflib.get_close_matches(name, list(signals), n=3, cutoff=0.5)
                problems.append(f"{where}: message {entry.message} has no signal {name!r}"
                                + _did_you_mean(close))
        if entry.signal not in signals:
            continue
        dbc_signal = signals[entry.signal]
        vss = catalog.get(entry.vss)
        assert vss is not None  # parse_mapping checked it
        problems.extend(f"{where}: {p}" for p in _dbc_problems(entry, dbc_signal, vss))
        if entry.unit_signal in signals and vss.unit is not None:
            unit_signal = signals[entry.unit_signal]
            problems.extend(f"{where}: {p}" for p in _unit_signal_problems(unit_signal, vss.unit))
    problems.extend(_action_problems(mapping, db, names))
    if problems:
        raise MappingError(mapping.source, problems)


def _action_problems(mapping: Mapping, db: Database, names: list[str]) -> Iterable[str]:
    """Every action frame must name a DBC message and signals, with values the DBC can encode."""
    from chelian.agent.can.actions import EncodeError, encode

    for action in mapping.actions:
        for frame in action.frames:
            where = f"{mapping.source}:{frame.line or action.line}: action {action.action}"
            try:
                message = db.get_message_by_name(frame.message)
            except KeyError:
                close = difflib.get_close_matches(frame.message, names, n=3, cutoff=0.6)
                yield f"{where}: the DBC has no message {frame.message!r}" + _did_you_mean(close)
                continue
            try:
                encode(message, dict(frame.signals))
            except EncodeError as exc:
                yield f"{where}: {exc}"


def _dbc_problems(entry: SignalMap, dbc_signal: Any, vss: Signal) -> Iterable[str]:
    choices = {str(name) for name in (dbc_signal.choices or {}).values()}
    for key, _ in entry.map:
        if isinstance(key, str) and key not in choices:
            yield (f"map key {key!r} is not a value name of {entry.message}.{entry.signal}"
                   + (f" (names: {', '.join(sorted(choices))})" if choices
                      else " (the DBC names none: use integers)"))
    if entry.map:
        return
    if vss.datatype == "boolean":
        if dbc_signal.length != 1:
            yield f"{entry.signal} is {dbc_signal.length} bits; a boolean needs a `map:` from its values"
        return
    if vss.unit is None or entry.unit_signal is not None:
        return
    source = entry.unit_from or dbc_signal.unit
    if not source:
        yield (f"the DBC gives {entry.message}.{entry.signal} no unit and {entry.vss} is in {vss.unit}: "
               f"say `unit_from: <unit>`")
        return
    try:
        units.converter(source, vss.unit)
    except units.UnitError as exc:
        yield (f"{entry.message}.{entry.signal} in DBC unit {source!r}: {exc} "
               "(set `unit_from` if the DBC is wrong)")


def _unit_signal_problems(unit_signal: Any, target: str) -> Iterable[str]:
    """A unit switch must name its values after units (values it does not name are dropped)."""
    names = [str(n) for n in (unit_signal.choices or {}).values()]
    if not names:
        yield f"unit_signal {unit_signal.name} names no values, so it cannot say which unit applies"
    for name in names:
        try:
            units.converter(name, target)
        except units.UnitError as exc:
            yield f"unit_signal {unit_signal.name} value {name!r}: {exc}"
