"""A real car's actuators: per command, a CAN action of its mapping or a hook program.

`chelian agent` acts on a car in two ways, configured per command (lock, unlock, honk_flash,
immobilise, mobilise, clear_dtcs):

* a **CAN action**: the mapping's `actions:` entry, sent on the bus the agent reads and
  optionally confirmed from the decoded signals (`chelian.agent.can.actions`);
* a **hook**: an executable run without a shell (`[actuators.hooks] lock = ["/usr/local/bin/
  car-lock"]`), for relays on a Raspberry Pi's GPIO, a vendor tool, a script. Exit status 0 is
  success; anything else, or running past the timeout, fails the command with the end of what
  the program wrote to stderr. The program gets CHELIAN_VIN, CHELIAN_COMMAND and, for
  honk_flash, CHELIAN_SECONDS in its environment.

A hook wins over a CAN action for the same command. A command with neither fails with a
reason that says how to wire it. Speed and position still come from the signal source, so the
executor's safety rule (immobilise waits until the car is stationary) is unchanged.

Example:
    actuators = CarActuators(source, {"lock": HookAction(["/usr/local/bin/car-lock"], vin=vin)})
    actuators.lock()          # runs the program; ActuationError if it fails
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable, Mapping
from typing import Any, Final

from chelian.agent.actuators import ACTIONS, ActuationError
from chelian.agent.sources import ReadOnlyActuators, SignalSource

Action = Callable[[dict[str, Any]], None]
"""Does one command (arguments as the catalog normalised them); raises ActuationError."""

STDERR_TAIL: Final = 400
"""Characters of a failed hook's stderr that go into the command's result."""
DEFAULT_HOOK_TIMEOUT_S: Final = 10.0
UNWIRED: Final = ("is not wired on this car: give it an [actuators.hooks] entry in the agent's config "
                  "or an `actions:` entry in its CAN mapping")


class HookAction:
    """Run a program (argv, no shell); exit 0 = done, else ActuationError with its stderr tail."""

    def __init__(self, argv: list[str], *, vin: str = "", timeout_s: float = DEFAULT_HOOK_TIMEOUT_S) -> None:
        if not argv:
            raise ValueError("a hook needs a program to run")
        self.argv, self.vin, self.timeout_s = list(argv), vin, timeout_s

    def __call__(self, args: dict[str, Any], command: str = "") -> None:
        env = dict(os.environ, CHELIAN_VIN=self.vin, CHELIAN_COMMAND=command)
        if "seconds" in args:
            env["CHELIAN_SECONDS"] = f"{args['seconds']:g}"
        program = self.argv[0]
        try:
            done = subprocess.run(self.argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,  # noqa: S603
                                  timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ActuationError(f"hook {program} did not finish within {self.timeout_s:g} s"
                                 + _tail(exc.stderr)) from None
        except OSError as exc:
            raise ActuationError(f"hook {program} could not run: {exc.strerror or exc}") from None
        if done.returncode != 0:
            how = (f"was killed by signal {-done.returncode}" if done.returncode < 0
                   else f"exited with status {done.returncode}")
            raise ActuationError(f"hook {program} {how}" + _tail(done.stderr))


def _tail(stderr: bytes | str | None) -> str:
    if not stderr:
        return ""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    text = text.strip()
    if len(text) > STDERR_TAIL:
        text = "..." + text[-STDERR_TAIL:]
    return f": {text}" if text else ""


class CarActuators(ReadOnlyActuators):
    """Actuators from a table of actions; position and speed from the signal source."""

    def __init__(self, source: SignalSource, actions: Mapping[str, Action],
                 wiring: Mapping[str, str] | None = None) -> None:
        super().__init__(source)
        unknown = set(actions) - set(ACTIONS)
        if unknown:
            raise ValueError(f"unknown action(s) {', '.join(sorted(unknown))}; known: {', '.join(ACTIONS)}")
        self.actions = dict(actions)
        self.wiring: dict[str, str] = {name: (wiring or {}).get(name, "custom") for name in self.actions}
        """command -> "hook", "CAN" or "custom": what `chelian agent` reports at start."""

    def describe(self) -> str:
        wired = ", ".join(f"{name} ({self.wiring[name]})" for name in ACTIONS if name in self.actions)
        missing = ", ".join(name for name in ACTIONS if name not in self.actions)
        return f"actuators: {wired or 'none'}" + (f"; not wired: {missing}" if missing else "")

    def _do(self, name: str, args: dict[str, Any] | None = None) -> None:
        action = self.actions.get(name)
        if action is None:
            raise ActuationError(f"{name} {UNWIRED}")
        action(args or {})

    def lock(self) -> None:
        self._do("lock")

    def unlock(self) -> None:
        self._do("unlock")

    def honk_flash(self, seconds: float = 3.0) -> None:
        self._do("honk_flash", {"seconds": seconds})

    def set_immobilised(self, immobilised: bool) -> None:
        self._do("immobilise" if immobilised else "mobilise")

    def clear_dtcs(self) -> None:
        self._do("clear_dtcs")


def car_actuators(source: SignalSource, vin: str, hooks: Mapping[str, list[str]], *,
                  hook_timeout_s: float = DEFAULT_HOOK_TIMEOUT_S, can: bool = True) -> CarActuators:
    """The actuators `chelian agent` gives its executor: hooks, then the CAN mapping's actions
    (when `can` and the source is a live bus whose mapping has them)."""
    actions: dict[str, Action] = {}
    wiring: dict[str, str] = {}
    if can and getattr(source, "can_send", False):
        from chelian.agent.can.actions import CanActions

        can_actions = CanActions.for_source(source)
        for name in can_actions.names:
            actions[name], wiring[name] = functools.partial(can_actions.run, name), "CAN"
    for name, argv in hooks.items():
        hook = HookAction(argv, vin=vin, timeout_s=hook_timeout_s)
        actions[name], wiring[name] = functools.partial(hook, command=name), "hook"
    return CarActuators(source, actions, wiring)
