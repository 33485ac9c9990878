"""The car side of remote commands: verify, decide, act, and answer with a signed ack.

What the agent runtime does with it (see docs/protocol.md, "Commands and acks"):
* subscribe to `v1/vehicles/{vin}/commands` (QoS 1) *before* publishing `online`;
* publish `announcement()` on `v1/vehicles/{vin}/acks` after each connect (the cloud pins the
  car's public key from it on first use);
* for every message on `commands`: `ack = executor.handle(payload)`, and publish `ack`, when
  not None, on `acks` at QoS 1;
* about once a second: publish every payload `executor.tick()` returns (immobilise commands
  that waited for the car to stop, and the ones a mobilise superseded).

Checks run in a fixed order, cheapest trust first: the key must be in the whitelist, the
signature must verify over the exact `env` bytes (only then are they parsed), then VIN, key
validity, time window and counter. Only an authenticated, fresh envelope consumes its counter,
and the counter reaches the disk before the car acts. Then role (catalog table), arguments,
and the action. Rejections before the signature verified are never remembered, so a forged
copy of a real envelope cannot poison the answer the real one gets.

Immobilising a moving car is never done: the command waits (no ack yet, kept in the keystore
across reboots) until the car is stationary, and fails with `unsafe` if its expiry comes first.

`set_tracking` changes no actuator: it sets `self.tracking` (kept in the keystore), which the
agent reads when it samples (`tracking.py`), so a car without actuator wiring tracks too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from chelian.agent.actuators import ActuationError, Actuators
from chelian.agent.keystore import KeyEntry, Keystore
from chelian.agent.tracking import Tracking, TrackingState
from chelian.services.commands.catalog import (
    ACTUATION_FAILED,
    BAD_SIGNATURE,
    COMMANDS,
    EXPIRED,
    INSUFFICIENT_ROLE,
    KEY_NOT_VALID_NOW,
    MALFORMED,
    NOT_YET_VALID,
    REPLAYED,
    SUPERSEDED,
    UNKNOWN_KEY,
    UNSAFE,
    WRONG_VIN,
    ArgsError,
)
from chelian.services.commands.envelope import (
    CLOCK_SKEW_MS,
    FAILED,
    KIND_AGENT_KEY,
    REJECTED,
    SUCCEEDED,
    Ack,
    Command,
    EnvelopeError,
    Sealed,
    Signer,
    b64u,
    key_id,
    open_sealed,
    unb64u,
    unwrap,
)

log = logging.getLogger("chelian.agent.commands")

COMMAND_DROPPED: Final = "command_dropped"
COMMAND_REJECTED: Final = "command_rejected"
COMMAND_EXECUTED: Final = "command_executed"
COMMAND_FAILED: Final = "command_failed"
COMMAND_DEFERRED: Final = "command_deferred"
COMMAND_ANSWERED_AGAIN: Final = "command_answered_again"

STATIONARY_KMH: Final = 1.0
"""At or below this speed the car counts as stationary (the immobiliser may engage)."""
_WAIT: Final = object()
"""A handler's answer meaning "not yet": the command is parked until `tick()` settles it."""

Clock = Callable[[], int]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CommandExecutor:
    def __init__(self, vin: str, keystore: Keystore, actuators: Actuators, clock: Clock = wall_ms, *,
                 skew_ms: int = CLOCK_SKEW_MS, stationary_kmh: float = STATIONARY_KMH,
                 tracking: Tracking | None = None) -> None:
        self.vin = vin
        self.keystore = keystore
        self.actuators = actuators
        self.clock = clock
        self.tracking = tracking or Tracking(TrackingState.from_json(keystore.tracking))
        """High-rate location tracking that `set_tracking` sets; the agent reads it when sampling
        (a reboot resumes it from the keystore until it lapses)."""
        self.skew_ms = skew_ms
        self.stationary_kmh = stationary_kmh
        self._signer = Signer.of(keystore.agent_key)
        self._lock = threading.RLock()
        self._parked: dict[str, tuple[Sealed, Command]] = {}
        for h, payload in keystore.waiting.items():  # verified before they were parked
            sealed = unwrap(payload)
            self._parked[h] = (sealed, Command.from_body(json.loads(sealed.env)))
        self._outbox: list[bytes] = []
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "lock": lambda _a: self.actuators.lock(),
            "unlock": lambda _a: self.actuators.unlock(),
            "locate": lambda _a: self.actuators.location(),
            "honk_flash": lambda a: self.actuators.honk_flash(a["seconds"]),
            "immobilise": self._immobilise,
            "mobilise": self._mobilise,
            "clear_dtcs": lambda _a: self.actuators.clear_dtcs(),
            "set_tracking": self._set_tracking,
            "enrol_key": self._enrol_key,
            "revoke_key": self._revoke_key,
        }
        assert set(self._handlers) == set(COMMANDS), "every catalog command needs a handler"

    @property
    def agent_public_key(self) -> str:
        """The car's public key, base64url: what an operator may pin in the cloud by hand."""
        return b64u(self.keystore.agent_key.public_key().public_bytes_raw())

    # --- the runtime's entry points -------------------------------------------------------

    def handle(self, payload: bytes) -> bytes | None:
        """One message from the `commands` topic -> the signed ack to publish on `acks`, or None."""
        with self._lock:
            try:
                sealed = unwrap(payload)
            except EnvelopeError as exc:
                log.warning("%s vin=%s reason=%s", COMMAND_DROPPED, self.vin, exc)
                return None
            answer = self.keystore.answer_for(sealed.hash)
            if answer is not None:
                log.info("%s vin=%s id=%s", COMMAND_ANSWERED_AGAIN, self.vin, sealed.id)
                return answer
            if sealed.hash in self._parked:
                return None
            entry = self.keystore.entry(sealed.kid)
            if entry is None:
                return self._answer(sealed, None, REJECTED, UNKNOWN_KEY, remember=False)
            try:
                command = Command.from_body(open_sealed(sealed, entry.public_key))
            except EnvelopeError as exc:
                return self._answer(sealed, None, REJECTED, exc.reason, remember=exc.reason != BAD_SIGNATURE)
            refusal = self._refusal(command, entry)
            if refusal is not None:
                return self._answer(sealed, command, REJECTED, refusal)
            self.keystore.use_counter(sealed.kid, command.ctr)  # on disk before anything moves
            return self._act(sealed, command, entry)

    def tick(self) -> list[bytes]:
        """Settle parked commands; returns acks to publish (call about once a second)."""
        with self._lock:
            out, self._outbox = self._outbox, []
            if not self._parked:
                return out
            now, speed = self.clock(), self.actuators.speed_kmh()
            for h, (sealed, command) in list(self._parked.items()):
                if now > command.exp:
                    self._unpark(h)
                    out.append(self._answer(sealed, command, FAILED, UNSAFE))
                elif speed <= self.stationary_kmh:
                    self._unpark(h)
                    out.append(self._run(sealed, command, lambda: self.actuators.set_immobilised(True)))
            return out

    def announcement(self) -> bytes:
        """The car's signed `agent_key` message, published on `acks` after each connect."""
        body = {"kind": KIND_AGENT_KEY, "vin": self.vin, "ts": self.clock()}
        return self._signer.seal(body, with_pub=True).wire()

    # --- deciding -------------------------------------------------------------------------

    def _refusal(self, command: Command, entry: KeyEntry) -> str | None:
        now = self.clock()
        checks = (
            (command.vin != self.vin, WRONG_VIN),
            (not entry.valid_at(now), KEY_NOT_VALID_NOW),
            (now + self.skew_ms < command.iat, NOT_YET_VALID),
            (now - self.skew_ms > command.exp, EXPIRED),
            (not entry.window.fresh(command.ctr), REPLAYED),
        )
        return next((reason for failed, reason in checks if failed), None)

    def _act(self, sealed: Sealed, command: Command, entry: KeyEntry) -> bytes | None:
        spec = COMMANDS.get(command.type)
        if spec is None:
            return self._answer(sealed, command, REJECTED, MALFORMED,
                                {"detail": f"unknown type {command.type}"})
        if not spec.allows(entry.role):
            return self._answer(sealed, command, REJECTED, INSUFFICIENT_ROLE,
                                {"detail": f"a {entry.role} key may not {command.type}"})
        try:
            args = spec.normalise(command.args)
        except ArgsError as exc:
            return self._answer(sealed, command, REJECTED, MALFORMED, {"detail": str(exc)})
        handler = self._handlers[command.type]
        return self._run(sealed, command, lambda: handler(args))

    def _run(self, sealed: Sealed, command: Command, action: Callable[[], Any]) -> bytes | None:
        try:
            result = action()
        except ArgsError as exc:
            return self._answer(sealed, command, REJECTED, MALFORMED, {"detail": str(exc)})
        except ActuationError as exc:
            return self._answer(sealed, command, FAILED, ACTUATION_FAILED, {"detail": str(exc)})
        if result is _WAIT:
            self._parked[sealed.hash] = (sealed, command)
            self.keystore.waiting[sealed.hash] = sealed.wire()
            self.keystore.save()
            log.info("%s vin=%s id=%s type=%s until=stationary", COMMAND_DEFERRED, self.vin, command.id,
                     command.type)
            return None
        return self._answer(sealed, command, SUCCEEDED, None, result if isinstance(result, dict) else {})

    def _answer(self, sealed: Sealed, command: Command | None, status: str, reason: str | None,
                result: dict[str, Any] | None = None, *, remember: bool = True) -> bytes:
        ack = Ack(command.id if command else sealed.id or "", self.vin, sealed.hash, status, reason,
                  result or {}, self.clock())
        payload = self._signer.seal(ack.body(), with_pub=True).wire()
        if remember:
            self.keystore.remember(sealed.hash, payload)
            self.keystore.commit()
        event = {SUCCEEDED: COMMAND_EXECUTED, FAILED: COMMAND_FAILED, REJECTED: COMMAND_REJECTED}[status]
        log.info("%s vin=%s id=%s type=%s reason=%s", event, self.vin, ack.id,
                 command.type if command else "?", reason)
        return payload

    def _unpark(self, h: str) -> None:
        """Forget a waiting command; the answer that follows commits it (with a snapshot)."""
        del self._parked[h]
        self.keystore.waiting.pop(h, None)

    # --- handlers that are more than one actuator call -------------------------------------

    def _immobilise(self, _args: dict[str, Any]) -> Any:
        if self.actuators.speed_kmh() > self.stationary_kmh:
            return _WAIT
        self.actuators.set_immobilised(True)
        return None

    def _mobilise(self, _args: dict[str, Any]) -> None:
        for h, (sealed, command) in list(self._parked.items()):
            if command.type == "immobilise":
                self._unpark(h)
                self._outbox.append(self._answer(sealed, command, FAILED, SUPERSEDED))
        self.actuators.set_immobilised(False)

    def _set_tracking(self, args: dict[str, Any]) -> dict[str, Any]:
        state = self.tracking.start(args["interval_ms"], args["duration_s"], self.clock())
        self.keystore.tracking = None if state is None else state.to_json()  # saved with the answer
        return {"tracking": False} if state is None else {"tracking": True, **state.to_json()}

    def _enrol_key(self, args: dict[str, Any]) -> dict[str, Any]:
        pub = unb64u(args["pub"], "pub")
        if key_id(pub) != args["kid"]:
            raise ArgsError(f"kid {args['kid']} is not the id of that public key")
        if args.get("exp") is not None and args.get("nbf") is not None and args["exp"] <= args["nbf"]:
            raise ArgsError("exp must be after nbf")
        self.keystore.enrol(pub, args["role"], args.get("nbf"), args.get("exp"))
        return {"kid": args["kid"], "role": args["role"]}

    def _revoke_key(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.keystore.revoke(args["kid"], self.clock()):
            raise ActuationError(f"no active key {args['kid']} in the whitelist")
        return {"kid": args["kid"]}
