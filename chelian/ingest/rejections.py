"""Why ingest refuses a message or a signal: one vocabulary for metrics, logs and the
dead-letter table (`rejected_messages.reason`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from chelian.link.codec import INVALID_ENVELOPE, MALFORMED_JSON

BAD_TOPIC: Final = "bad_topic"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
RATE_LIMITED: Final = "rate_limited"
UNKNOWN_VEHICLE: Final = "unknown_vehicle"
CLOCK_SKEW: Final = "clock_skew"
UNKNOWN_SIGNAL: Final = "unknown_signal"
WRONG_TYPE: Final = "wrong_type"
OUT_OF_RANGE: Final = "out_of_range"
STORAGE_ERROR: Final = "storage_error"

REASONS: Final = (MALFORMED_JSON, INVALID_ENVELOPE, BAD_TOPIC, PAYLOAD_TOO_LARGE, RATE_LIMITED,
                  UNKNOWN_VEHICLE, CLOCK_SKEW, UNKNOWN_SIGNAL, WRONG_TYPE, OUT_OF_RANGE, STORAGE_ERROR)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A dead-letter row: the raw payload and why (all of it, or some of its signals)."""

    topic: str
    vin: str | None
    reason: str
    detail: str
    payload: bytes
    received_ms: int
    whole_payload: bytes | None = None
    """The message as received when `payload` keeps only part of it (an oversized one)."""

    @property
    def digest(self) -> str:
        """What makes a dead letter the same one again: a message the broker redelivers (the
        ingest died before acking it) has the same topic, reason and bytes - all of them, not
        only the part kept - and is kept once."""
        h = hashlib.sha256(self.topic.encode())
        h.update(b"\0" + self.reason.encode() + b"\0")
        h.update(self.payload if self.whole_payload is None else self.whole_payload)
        return h.hexdigest()
