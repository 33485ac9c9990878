"""What ingest hands to storage: rows prepared from a batch of MQTT messages.

Everything here is already validated and encoded; a writer only has to store it atomically
and skip the messages whose (vehicle, seq) it has already stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chelian.ingest.rejections import Rejection


@dataclass(frozen=True, slots=True)
class Inbound:
    """One MQTT message as the broker delivered it; `mid`/`qos` are needed to ack it later."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int
    generation: int = 0
    """Which connection delivered it: packet ids are only meaningful within one."""


# (vehicle_id, path, ts_ms, received_ms, value_num, value_text)
SampleRow = tuple[int, str, int, int, float | None, str | None]


@dataclass(slots=True)
class TelemetryRows:
    """One accepted message: its row for `telemetry` and its samples for latest state."""

    vehicle_id: int
    seq: int
    ts_ms: int
    received_ms: int
    signals_json: str
    samples: dict[str, SampleRow]
    """Path -> its latest-state row; a dict so merging a car's messages runs in C."""


@dataclass(frozen=True, slots=True)
class EventRow:
    vehicle_id: int
    seq: int
    type: str
    ts_ms: int
    received_ms: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatusRow:
    vehicle_id: int
    online: bool
    ts_ms: int


@dataclass(slots=True)
class Batch:
    telemetry: list[TelemetryRows] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    duplicates: int = 0
    """Messages dropped because the same (channel, vin, seq) came earlier in this very batch."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Refusals counted but not dead-lettered (a flooding car's rate_limited / payload_too_large
    beyond one sample per interval): reason -> how many."""
    refused: dict[int, Rejection | str] = field(default_factory=dict)
    """Position in the inbound list -> what the transport checks (topic, size, rate) decided
    for a message they refused: its dead-letter row, or only the reason when it was left out.
    A message-by-message retry reuses these instead of charging the rate limiter again."""

    def is_empty(self) -> bool:
        return not (self.telemetry or self.events or self.statuses or self.rejections)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a commit really added: only these rows are new (redeliveries are left out), so
    whatever reacts to them (detectors, notifications) never fires twice for one message."""

    new_telemetry: list[TelemetryRows]
    new_events: list[EventRow]
    duplicates: int
    """Telemetry and event messages already stored (redeliveries), recognised by (vehicle, seq)."""
    statuses: list[StatusRow] = field(default_factory=list)

    @property
    def messages_stored(self) -> int:
        return len(self.new_telemetry)

    @property
    def signals_stored(self) -> int:
        return sum(len(m.samples) for m in self.new_telemetry)

    @property
    def events_stored(self) -> int:
        return len(self.new_events)


def latest_per_signal(rows: list[TelemetryRows]) -> list[SampleRow]:
    """The newest sample of each (vehicle, path), sorted so concurrent writers lock in one order.

    Each car's messages are merged oldest first with `dict.update`, so the newest value of
    every path wins without a Python-level loop over individual signals.
    """
    per_vehicle: dict[int, dict[str, SampleRow]] = {}
    for message in sorted(rows, key=lambda m: m.ts_ms):
        merged = per_vehicle.get(message.vehicle_id)
        if merged is None:
            per_vehicle[message.vehicle_id] = dict(message.samples)
        else:
            merged.update(message.samples)
    return [merged[path] for vehicle_id in sorted(per_vehicle)
            for merged in (per_vehicle[vehicle_id],) for path in sorted(merged)]
