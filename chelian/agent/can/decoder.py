"""CAN frame -> VSS values, through a DBC and a mapping.

A car's bus carries hundreds of frame ids at up to a few thousand frames per second, and a
mapping uses a dozen of them: `decode` answers the rest with one dict lookup. Mapped frames
are decoded by cantools (`decode_choices=True`, so enum signals arrive as their DBC names),
then each entry's rule is applied: value table, or scale/offset and unit conversion, then the
cast the VSS datatype needs. A value the catalog refuses is dropped and counted, never
raised: one glitching ECU must not stop the other signals.

Example:
    decoder = CanDecoder(opendbc_dbc("vw_mqb"), "vw_mqb")
    decoder.decode(can.Message(arbitration_id=0xFD, data=...))  # {"Vehicle.Speed": 42.0}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import can
from cantools.database.can import Database
from cantools.database.can import Message as DbcMessage
from cantools.database.namedsignalvalue import NamedSignalValue

from chelian.agent.can import units
from chelian.agent.can.dbc import load_dbc
from chelian.agent.can.mapping import Mapping, SignalMap, check_against_dbc, load_mapping
from chelian.signals import INT_BOUNDS, Catalog, Signal, SignalError, check_value

_EXTENDED: Final = 1 << 31  # folded into the lookup key so 0x123 standard != 0x123 extended


def _to_bool(x: float) -> bool:
    return x != 0


def _to_int(x: float) -> int:
    """Half-up rounding: a pedal at 42.5 % reads 43, not Python's banker's 42."""
    return math.floor(x + 0.5)


CASTS: Final[dict[str, Callable[[float], Any]]] = {
    "boolean": _to_bool, "float": float, "double": float, **{t: _to_int for t in INT_BOUNDS},
}
"""How a converted number becomes the VSS datatype (strings only ever come from a `map`)."""


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One mapping entry compiled against its DBC signal and catalog entry."""

    entry: SignalMap
    target: Signal
    table: AbcMapping[Any, Any] | None
    linear: units.Linear            # unit conversion when the unit is fixed
    unit_signal: str | None         # ... or the signal that names the unit, per frame
    cast: Callable[[float], Any] | None


@dataclass(frozen=True, slots=True, eq=False)
class BoundMessage:
    message: DbcMessage
    rules: tuple[Rule, ...]


@dataclass(slots=True)
class DecodeStats:
    """Counters, so a mapping that quietly produces nothing can be diagnosed on the car."""

    frames: int = 0
    ignored: int = 0       # frame id not used by the mapping (or error/remote frame)
    malformed: int = 0     # mapped id, but cantools could not decode the payload
    unmapped: int = 0      # value absent from `map`, or a DBC-named sentinel such as "Init"
    rejected: int = 0      # converted value refused by the catalog (out of plausible range)
    last_problem: str = ""


class CanDecoder:
    """Decode frames of one DBC into VSS values according to one mapping."""

    def __init__(self, dbc_path: str | Path | None, mapping: Mapping | str | Path,
                 catalog: Catalog | None = None) -> None:
        self.catalog = catalog or Catalog.builtin()
        if isinstance(mapping, Mapping):
            self.db: Database = load_dbc(dbc_path if dbc_path is not None else mapping.dbc_path())
            check_against_dbc(mapping, self.db, self.catalog)
        else:
            self.db = load_dbc(dbc_path) if dbc_path is not None else None  # type: ignore[assignment]
            mapping = load_mapping(mapping, self.db, self.catalog)
            if self.db is None:
                self.db = load_dbc(mapping.dbc_path())
        self.mapping = mapping
        self.stats = DecodeStats()
        self._by_key: dict[int, BoundMessage] = self._compile()

    def _compile(self) -> dict[int, BoundMessage]:
        rules: dict[str, list[Rule]] = {}
        for entry in self.mapping.entries:
            target = self.catalog.get(entry.vss)
            assert target is not None  # the mapping was validated against this catalog
            rules.setdefault(entry.message, []).append(self._rule(entry, target))
        bound = {}
        for name, message_rules in rules.items():
            message = self.db.get_message_by_name(name)
            key = message.frame_id | (_EXTENDED if message.is_extended_frame else 0)
            bound[key] = BoundMessage(message, tuple(message_rules))
        return bound

    def _rule(self, entry: SignalMap, target: Signal) -> Rule:
        if entry.map:
            return Rule(entry, target, dict(entry.map), units.IDENTITY, None, None)
        linear = units.IDENTITY
        if target.unit is not None and entry.unit_signal is None:
            dbc_signal = self.db.get_message_by_name(entry.message).get_signal_by_name(entry.signal)
            source = entry.unit_from or dbc_signal.unit
            if source and units.lookup(source) is not None:
                linear = units.converter(source, target.unit)
        return Rule(entry, target, None, linear, entry.unit_signal, CASTS[target.datatype])

    @property
    def paths(self) -> frozenset[str]:
        """Every VSS path this decoder can produce."""
        return frozenset(e.vss for e in self.mapping.entries)

    def can_filters(self) -> list[dict[str, Any]]:
        """python-can filters for the mapped ids, so socketcan drops the rest in the kernel."""
        return [{"can_id": b.message.frame_id, "extended": b.message.is_extended_frame,
                 "can_mask": 0x1FFFFFFF if b.message.is_extended_frame else 0x7FF}
                for b in self._by_key.values()]

    def decode(self, frame: can.Message) -> dict[str, Any]:
        """The VSS values carried by `frame`: {} for frames the mapping does not use."""
        self.stats.frames += 1
        bound = self._by_key.get(frame.arbitration_id | (_EXTENDED if frame.is_extended_id else 0))
        if bound is None or frame.is_error_frame or frame.is_remote_frame:
            self.stats.ignored += 1
            return {}
        try:
            values = bound.message.decode(bytes(frame.data), decode_choices=True)
        except Exception as exc:  # noqa: BLE001 - cantools raises several types for a bad payload
            self.stats.malformed += 1
            self.stats.last_problem = f"{bound.message.name}: {exc}"
            return {}
        out: dict[str, Any] = {}
        for rule in bound.rules:
            value = self._apply(rule, values)
            if value is not None:
                out[rule.target.path] = value
        return out

    def _apply(self, rule: Rule, values: dict[str, Any]) -> Any:
        raw = values.get(rule.entry.signal)
        if raw is None:
            return None
        if rule.table is not None:
            result = self._lookup(rule, raw)
        else:
            result = self._convert(rule, raw, values)
        if result is None:
            self.stats.unmapped += 1
            return None
        try:
            return check_value(rule.target, result)
        except SignalError as exc:
            self.stats.rejected += 1
            self.stats.last_problem = f"{self.mapping.where(rule.entry)}: {exc.detail}"
            return None

    @staticmethod
    def _lookup(rule: Rule, raw: Any) -> Any:
        assert rule.table is not None
        if isinstance(raw, NamedSignalValue):
            found = rule.table.get(raw.name)
            return found if found is not None else rule.table.get(raw.value)
        return rule.table.get(raw)

    @staticmethod
    def _convert(rule: Rule, raw: Any, values: dict[str, Any]) -> Any:
        if isinstance(raw, NamedSignalValue):
            # A named value on a numeric signal is a sentinel ("Init", "Fehler", "SNA"): not a
            # reading. A 1-bit flag with names ("off"/"on") still is a boolean reading.
            if rule.target.datatype != "boolean":
                return None
            raw = raw.value
        number = raw * rule.entry.scale + rule.entry.offset
        if rule.unit_signal is not None:
            unit = values.get(rule.unit_signal)
            try:
                number = units.convert(number, str(unit), rule.target.unit or "")
            except units.UnitError:
                return None
        else:
            number = rule.linear(number)
        assert rule.cast is not None
        return rule.cast(number)
