"""N simulated cars in one process, each running the real vehicle agent.

Every car is a `chelian.agent.runtime.Agent`, the program a real car runs, with a simulated
signal source (`SimSignalSource`) and actuators on the simulated body: its own broker
account (client id = username = VIN), retained `offline` will and `online` status, per-signal
rate/deadband policy, an on-disk store-and-forward queue replayed in order after an outage,
a full snapshot on every reconnect, and commands executed when a command executor is wired.

One asyncio loop, in a background thread, hosts all agents (that is what lets 1 000 cars run
on two cores; a thread per car would not), so callers keep a plain blocking API: `start()`,
`stop()`, `wait_connected()`. The ticker advances every car by a fixed step (deterministic
physics whatever the scheduling), spread over the period in slices so the broker sees a
steady stream rather than a burst each second. A car told to track at high rate
(`set_tracking`, e.g. a stolen car at 500 ms) is stepped in smaller steps in several slices.

Example:
    fleet = Fleet([SimCarConfig(vin, vin, secret)], "127.0.0.1", 1883, rate_hz=1).start()
    fleet.wait_connected(5)
    ...
    fleet.stop()
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chelian.agent.publisher import PolicyTable
from chelian.agent.runtime import Agent, CommandHandler, LinkSettings
from chelian.agent.store_forward import QueueDB
from chelian.link import topics
from chelian.sim.behaviours import RandomFaults, Scenario
from chelian.sim.grid import StreetGrid
from chelian.sim.models import model_for_vin
from chelian.sim.roads import RoadNetwork
from chelian.sim.source import SimActuators, SimSignalSource
from chelian.sim.vehicle import SimVehicle

log = logging.getLogger(__name__)

DEFAULT_CENTRE = (42.2808, -83.7430)
"""Ann Arbor, Michigan: home of Mcity, a fitting town to test-drive connected cars in."""
SLICES_PER_PERIOD = 10
CommandsFactory = Callable[[str, SimActuators], CommandHandler | None]
"""(vin, actuators) -> the car's command executor, or None for a car that takes no commands."""


class HasCarCredentials(Protocol):
    vin: str
    mqtt_username: str
    mqtt_password: str


@dataclass(frozen=True, slots=True)
class SimCarConfig:
    vin: str
    username: str
    password: str
    seed: int | None = None
    """None: derived from the fleet seed and the VIN, so every car drives differently."""

    @classmethod
    def from_credentials(cls, creds: HasCarCredentials, seed: int | None = None) -> SimCarConfig:
        return cls(creds.vin, creds.mqtt_username, creds.mqtt_password, seed)


@dataclass
class _Car:
    config: SimCarConfig
    source: SimSignalSource
    agent: Agent


class Fleet:
    """Drives `cars` against the broker at host:port until `stop()`."""

    def __init__(self, cars: list[SimCarConfig], host: str, port: int, rate_hz: float = 1.0, *,
                 seed: int = 0, centre: tuple[float, float] = DEFAULT_CENTRE, seq_path: Path | None = None,
                 mqtt_version: int = 4, full_snapshot_s: float = 60.0, keepalive_s: int = 30,
                 network: RoadNetwork | None = None, scenarios: Sequence[Scenario] = (),
                 random_faults: bool = True, commands: CommandsFactory | None = None,
                 link_options: dict[str, Any] | None = None) -> None:
        """`seq_path` names the fleet's state directory (queue and sequence numbers go to
        `agents.db` beside it; an older simulator's `seq.json` there is taken over)."""
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        if mqtt_version not in (4, 5):
            raise ValueError("mqtt_version must be one of [4, 5]")
        self.host, self.port, self.rate_hz = host, port, rate_hz
        self.network = network or StreetGrid.generate(*centre, seed=seed)
        self.db = QueueDB(seq_path.with_name("agents.db") if seq_path is not None else None)
        floors = _old_seq_floors(seq_path)
        policy = PolicyTable.standard().scaled(full_snapshot_s)
        local = time.localtime()
        clock_s = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
        by_index = {s.car: s for s in scenarios}
        self._cars: list[_Car] = []
        for index, config in enumerate(cars):
            car_seed = config.seed if config.seed is not None else \
                int.from_bytes(hashlib.sha256(f"{seed}:{config.vin}".encode()).digest()[:8])
            vehicle = SimVehicle(model_for_vin(config.vin), self.network, car_seed, clock_s=clock_s)
            if random_faults:
                vehicle.behaviours.append(RandomFaults(random.Random(f"faults:{car_seed}")))
            if index in by_index:
                vehicle.behaviours.append(by_index[index].behaviour())
            source = SimSignalSource(vehicle)
            outbox = self.db.outbox(config.vin)
            for channel in (topics.TELEMETRY, topics.EVENTS):
                outbox.raise_floor(channel, floors.get(f"{config.vin}/{channel}", 0))
            link = LinkSettings(host, port, config.username, config.password, mqtt_version=mqtt_version,
                                keepalive_s=keepalive_s, **(link_options or {}))
            handler = commands(config.vin, SimActuators(source)) if commands is not None else None
            agent = Agent(config.vin, link, source, outbox, policy=policy, commands=handler)
            self._cars.append(_Car(config, source, agent))
        self._by_vin = {car.config.vin: car for car in self._cars}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.tick_lag_s = 0.0
        """How late the last round of ticks finished (0 when the fleet keeps pace)."""
        self.ticks = 0
        """Car-ticks done so far (one car sampled once): the simulator's unit of work."""

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Fleet:
        """Connect every car (in the background, retrying) and start driving."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="chelian-sim",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)
        log.info("sim_fleet_started cars=%d broker=%s:%d rate_hz=%s", len(self._cars), self.host, self.port,
                 self.rate_hz)
        return self

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        runs = [asyncio.create_task(car.agent.run(rate_hz=None)) for car in self._cars]
        ticker = asyncio.create_task(self._tick_forever())
        self._ready.set()
        await self._stop.wait()
        ticker.cancel()
        await asyncio.gather(*(car.agent.stop() for car in self._cars), return_exceptions=True)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Say goodbye like cars switched off properly: an offline status each, then DISCONNECT."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout_s + len(self._cars) / 100)  # a thousand goodbyes take a moment
        self.db.close()
        log.info("sim_fleet_stopped published=%d", self.published)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        """True once every car is connected (False if that takes longer than `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        return all(car.agent.online.wait(max(0.0, deadline - time.monotonic())) for car in self._cars)

    def drop_connection(self, vin: str) -> None:
        """Lose a car's link without a DISCONNECT (a tunnel, a dead zone): the broker publishes
        its last will, and the car reconnects, says it is online again and catches up."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._by_vin[vin].agent.drop_link)

    # --- what the cars are doing ---------------------------------------------------------------

    @property
    def vins(self) -> list[str]:
        return [car.config.vin for car in self._cars]

    def vehicle(self, vin: str) -> SimVehicle:
        return self._by_vin[vin].source.vehicle

    def agent(self, vin: str) -> Agent:
        return self._by_vin[vin].agent

    @property
    def connected(self) -> int:
        return sum(car.agent.online.is_set() for car in self._cars)

    @property
    def published(self) -> int:
        """Messages the broker has acknowledged."""
        return sum(car.agent.delivered for car in self._cars)

    @property
    def queued(self) -> int:
        return sum(len(car.agent.outbox) for car in self._cars)

    @property
    def dropped(self) -> int:
        return sum(car.agent.outbox.dropped for car in self._cars)

    # --- the clock ----------------------------------------------------------------------------

    def schedule(self, now_ms: int) -> list[list[tuple[_Car, float]]]:
        """One period's work: per slice, the (car, step in seconds) to advance and sample.

        Every car is stepped once per period in its own slice; a car whose agent tracks at high
        rate (`set_tracking` faster than the fleet's period) is stepped in smaller steps spread
        over the period's slices, so its positions really differ and arrive on the interval.
        """
        period, slices, cars = 1.0 / self.rate_hz, SLICES_PER_PERIOD, len(self._cars)
        plan: list[list[tuple[_Car, float]]] = [[] for _ in range(slices)]
        for index, car in enumerate(self._cars):
            home = index * slices // cars
            interval = car.agent.tracking.interval_s(now_ms)
            steps = 1 if interval is None or interval >= period else min(slices, math.ceil(period / interval))
            for k in range(steps):
                plan[(home + k * slices // steps) % slices].append((car, period / steps))
        return plan

    async def _tick_forever(self) -> None:
        period = 1.0 / self.rate_hz
        deadline = time.monotonic()
        while True:
            plan = self.schedule(time.time_ns() // 1_000_000)
            for group in plan:
                for car, step_s in group:
                    try:
                        car.source.advance(step_s)
                        car.agent.tick()
                        self.ticks += 1
                    except Exception:  # one car's bug must not stop the fleet
                        log.exception("sim_car_tick_failed vin=%s", car.config.vin)
                deadline += period / len(plan)
                late = time.monotonic() - deadline
                await asyncio.sleep(max(0.0, -late))
            self.tick_lag_s = max(0.0, late)
            if time.monotonic() - deadline > 10 * period:
                deadline = time.monotonic()  # fell far behind (suspended laptop): don't burst to catch up


def _old_seq_floors(seq_path: Path | None) -> dict[str, int]:
    """The previous simulator's reserved sequence numbers (`seq.json`), so none is reused."""
    if seq_path is None or not seq_path.is_file():
        return {}
    try:
        data = json.loads(seq_path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}
