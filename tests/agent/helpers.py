"""Test doubles for the agent: a link that can be cut, a clock the test turns, a car whose
signals the test writes, and a command executor that echoes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class LinkProxy:
    """A TCP proxy between agent and broker; `cut()` is a dead zone: open connections are
    closed without an MQTT DISCONNECT (so the broker sends the will) and new ones are
    refused until `restore()`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.listen_port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the proxy is closing
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        """Shut down gracefully: whatever is in flight (a DISCONNECT) is still delivered."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        self._writers.clear()


@dataclass
class ManualClock:
    """Device time in epoch ms that moves only when the test says so."""

    now: int

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


@dataclass
class ScriptedSource:
    """A car parked with its doors locked whose speed reading the test sets."""

    speed: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {"Vehicle.Speed": self.speed, "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": True,
                "Vehicle.Exterior.AirTemperature": 11.5, **self.extra}

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.events = self.events, []
        return out


@dataclass
class EchoCommands:
    """A command executor double: acks every command with its payload reversed."""

    received: list[bytes] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)

    def handle(self, payload: bytes) -> bytes | None:
        self.received.append(payload)
        return b"ack:" + payload[::-1]

    def tick(self) -> list[bytes]:
        out, self.pending = self.pending, []
        return out

    def announcement(self) -> bytes:
        return b"hello"


async def until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True
