"""The agent's CAN signal source: a reader thread that keeps the latest value of every path.

The agent publishes on its own schedule (telemetry batches, command acks), not once per CAN
frame, so the source keeps only the newest value per VSS path: memory is bounded by the
mapping, and a slow consumer can never make the reader fall behind the bus. Frames come from
a live bus (socketcan on the car, `virtual` in tests) or from a recorded log replayed through
`can.LogReader` + `can.MessageSync` (candump `-l` .log, .asc, .blf, .trc, .csv): a drive
recorded once can be replayed on a desk at recorded pace or as fast as possible.

Example:
    decoder = CanDecoder(None, "toyota_nodsu")               # DBC from the mapping's `dbc:`
    with CanSignalSource(decoder, interface="socketcan", channel="can0") as source:
        ...
        source.snapshot()   # {"Vehicle.Speed": 51.2, "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen": False, ...}
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import can

from chelian.agent.can.decoder import CanDecoder

log = logging.getLogger(__name__)

OnUpdate = Callable[[str, Any, float], None]
"""`on_update(path, value, frame_timestamp)`, called from the reader thread."""

RECV_TIMEOUT = 0.2
"""Seconds a live read waits for a frame: the bound on how long `stop()` waits for the thread."""


class CanSignalSource:
    """Read frames from a bus or a log in a thread; `snapshot()` gives the latest VSS values.

    Exactly one input: `log` (a file to replay), `bus` (an open python-can bus the caller
    owns), or `interface` + `channel` (a bus this source opens with kernel-side filters for
    the mapped ids, and closes on `stop`).
    """

    def __init__(self, decoder: CanDecoder, *, interface: str = "socketcan", channel: str | None = "can0",
                 log_file: str | Path | None = None, realtime: bool = True, max_gap: float = 1.0,
                 bus: can.BusABC | None = None, on_update: OnUpdate | None = None,
                 only_changes: bool = True, **bus_options: Any) -> None:
        """`realtime` replays a log at recorded pace, with silences longer than `max_gap`
        seconds shortened (that also bounds how long `stop()` can wait); False replays
        as fast as the decoder goes. `only_changes` calls `on_update` only when a value
        differs from the previous one. `bus_options` go to `can.Bus` (e.g. bitrate)."""
        self.decoder = decoder
        self.interface, self.channel, self.bus_options = interface, channel, bus_options
        self.log_file = Path(log_file) if log_file is not None else None
        self.realtime, self.max_gap = realtime, max_gap
        self.on_update, self.only_changes = on_update, only_changes
        self._bus, self._owns_bus = bus, False
        self._latest: dict[str, Any] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.callback_errors = 0
        self.error: BaseException | None = None
        """What ended the reader thread early (a bus that went away, an unreadable log)."""

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Open the input in the caller's thread (so a missing `can0` raises here), then read."""
        if self._thread is not None:
            raise RuntimeError("CanSignalSource already started")
        if self.log_file is None and self._bus is None:
            self._bus = can.Bus(interface=self.interface, channel=self.channel,
                                can_filters=self.decoder.can_filters(), **self.bus_options)
            self._owns_bus = True
        elif self.log_file is not None and not self.log_file.is_file():
            raise FileNotFoundError(f"CAN log {self.log_file} does not exist")
        self._thread = threading.Thread(target=self._run, name="can-signal-source", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and close an owned bus; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._owns_bus and self._bus is not None:
            self._bus.shutdown()
            self._bus, self._owns_bus = None, False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a replay to reach the end of its log; True when the thread has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    @property
    def can_send(self) -> bool:
        """Whether `send` has a bus to send on (a replayed log has none)."""
        return self.log_file is None

    def send(self, frame: can.Message, timeout: float | None = 1.0) -> None:
        """Transmit `frame` on the bus this source reads (the mapping's `actions:`)."""
        bus = self._bus
        if bus is None:
            raise can.CanOperationError("this CAN source replays a log or is stopped: it cannot send frames")
        bus.send(frame, timeout)

    # -- values ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The latest value of every path seen so far (a copy)."""
        with self._changed:
            return dict(self._latest)

    def wait_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        """Block until `predicate(snapshot)` holds (True) or `timeout` seconds pass (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._latest), timeout)

    # -- reader thread -------------------------------------------------------------------------
    def _frames(self) -> Iterator[can.Message]:
        if self.log_file is not None:
            with can.LogReader(self.log_file) as reader:
                yield from can.MessageSync(reader, timestamps=self.realtime, gap=0.0, skip=self.max_gap)
            return
        assert self._bus is not None
        while not self._stop.is_set():
            frame = self._bus.recv(timeout=RECV_TIMEOUT)
            if frame is not None:
                yield frame

    def _run(self) -> None:
        try:
            for frame in self._frames():
                if self._stop.is_set():
                    break
                self._handle(frame)
        except Exception as exc:  # noqa: BLE001 - recorded for the agent's health report
            self.error = exc
            log.exception("CAN signal source stopped")
        finally:
            with self._changed:
                self._changed.notify_all()

    def _handle(self, frame: can.Message) -> None:
        self.frames += 1
        values = self.decoder.decode(frame)
        if not values:
            return
        with self._changed:
            latest = self._latest
            changed = {p: v for p, v in values.items()
                       if not self.only_changes or latest.get(p, _MISSING) != v}
            latest.update(values)
            self._changed.notify_all()
        if self.on_update is None:
            return
        for path, value in changed.items():
            try:
                self.on_update(path, value, frame.timestamp)
            except Exception:  # noqa: BLE001 - a consumer's bug must not stop the bus reader
                self.callback_errors += 1
                log.exception("on_update failed for %s", path)


_MISSING: Any = object()
