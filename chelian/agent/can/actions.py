"""Commanding a car over CAN: a mapping's `actions:` encoded with cantools, sent with python-can.

An action (lock, honk_flash, ...) is one or more DBC messages with the signal values to set;
the signals an action does not name are sent as raw 0. Frames are encoded once, when the
agent starts (a value the DBC cannot encode is a mapping error, found by `load_mapping`), and
sent on the bus the signal source reads. An action with `confirm:` then waits until the
decoded signals show the result (`Vehicle.Cabin.Door.Row1.DriverSide.IsLocked` reads true)
and fails with "not confirmed" when they do not within the timeout: a frame on the wire is
not a locked car.

What this cannot do: compute checksums or rolling counters (opendbc's packer does that for
openpilot); an ECU that checks them needs a DBC message without them or a hook instead.

Example:
    actions = CanActions.for_source(source)   # a started, live CanSignalSource
    actions.run("lock")                       # ActuationError when it is not confirmed
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import can
from cantools.database.can import Database
from cantools.database.can import Message as DbcMessage

from chelian.agent.actuators import ActuationError
from chelian.agent.can.mapping import ActionMap, Mapping

Snapshot = dict[str, Any]
Watch = Callable[[Callable[[Snapshot], bool], float], bool]
"""`watch(predicate, timeout_s)`: True once predicate(current signals) holds, False at the timeout."""


class EncodeError(ValueError):
    """Signal values a DBC message cannot carry."""


def encode(message: DbcMessage, values: dict[str, Any]) -> bytes:
    """`message`'s payload with `values` set (physical values or DBC value names), the rest raw 0."""
    known = {s.name: s for s in message.signals}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise EncodeError(f"message {message.name} has no signal {', '.join(map(repr, unknown))} "
                          f"(it has {', '.join(sorted(known))})")
    for name, value in values.items():
        signal = known[name]
        if isinstance(value, str):
            names = {str(n) for n in (signal.choices or {}).values()}
            if value not in names:
                raise EncodeError(f"{message.name}.{name}: {value!r} is not one of its DBC values "
                                  f"({', '.join(sorted(names)) or 'it names none'})")
        elif ((signal.minimum is not None and value < signal.minimum)
              or (signal.maximum is not None and value > signal.maximum)):
            raise EncodeError(f"{message.name}.{name}: {value} is outside {signal.minimum}..{signal.maximum}")
    try:
        zeros = message.decode(bytes(message.length), decode_choices=False, scaling=True)
        return bytes(message.encode({**zeros, **values}, scaling=True, padding=False, strict=False))
    except Exception as exc:  # noqa: BLE001 - cantools raises several types for a value it cannot pack
        raise EncodeError(f"{message.name}: cannot encode {values}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Compiled:
    spec: ActionMap
    frames: tuple[can.Message, ...]


class CanActions:
    """The `actions:` of one mapping, ready to send through `send` and confirm through `watch`."""

    def __init__(self, db: Database, mapping: Mapping, send: Callable[[can.Message], None],
                 watch: Watch | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.send, self.watch, self.sleep = send, watch, sleep
        self._actions: dict[str, _Compiled] = {}
        for spec in mapping.actions:
            frames = []
            for frame in spec.frames:
                message = db.get_message_by_name(frame.message)
                frames.append(can.Message(arbitration_id=message.frame_id,
                                          is_extended_id=message.is_extended_frame,
                                          data=encode(message, dict(frame.signals)), is_fd=message.is_fd))
            self._actions[spec.action] = _Compiled(spec, tuple(frames))

    @classmethod
    def for_source(cls, source: Any) -> CanActions:
        """Actions on the bus a started `CanSignalSource` reads, confirmed from its signals."""
        return cls(source.decoder.db, source.decoder.mapping, source.send, source.wait_until)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._actions)

    def run(self, action: str, args: dict[str, Any] | None = None) -> None:
        """Send the action's frames (`repeat` times) and wait for its confirmation, if it has one."""
        del args  # CAN actions send fixed values; a hook gets the arguments
        compiled = self._actions.get(action)
        if compiled is None:
            raise ActuationError(f"the CAN mapping has no action {action!r}")
        spec = compiled.spec
        try:
            for i in range(spec.repeat):
                if i:
                    self.sleep(spec.interval_ms / 1000)
                for frame in compiled.frames:
                    self.send(frame)
        except (can.CanError, OSError) as exc:
            raise ActuationError(f"{action}: CAN send failed: {exc}") from exc
        confirm = spec.confirm
        if confirm is None:
            return
        if self.watch is None or not self.watch(lambda snap: snap.get(confirm.vss) == confirm.value,
                                                confirm.timeout_s):
            raise ActuationError(f"{action} not confirmed: {confirm.vss} did not read "
                                 f"{_show(confirm.value)} within {confirm.timeout_s:g} s")


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)
