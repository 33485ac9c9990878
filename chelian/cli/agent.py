"""`chelian agent --config FILE`: the vehicle agent of one real car, until SIGTERM or Ctrl-C.

Reads the car's TOML configuration (`chelian.agent.config`), opens its signal source (a CAN
bus, or a recorded CAN log replayed), its on-disk queue and, when the config names the
cloud's or the owner's command key, its command keystore and executor. The executor acts
through `CarActuators`: per command, a hook program (`[actuators.hooks]`) or the CAN
mapping's `actions:` sent on the live bus; a command wired to neither fails with a reason in
its ack, and `locate` answers from the car's own signals. Commands run in a worker thread,
so a hook or a CAN confirmation that takes seconds never stalls telemetry. SIGTERM and
SIGINT switch the car off properly: `offline` status, DISCONNECT, queue kept on disk for
the next start.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from chelian.agent.config import AgentConfig, CanSource
from chelian.agent.runtime import Agent, CommandHandler
from chelian.agent.sources import open_can_source
from chelian.agent.store_forward import QueueDB
from chelian.cli.common import console, reported_errors
from chelian.errors import ConfigError

ConfigPath = Annotated[Path, typer.Option("--config", help="The car's agent configuration (TOML).",
                                          show_default=False)]


def agent(config: ConfigPath) -> None:
    """Run the vehicle agent: stream this car's signals to the cloud and execute its commands."""
    with reported_errors():
        asyncio.run(serve(AgentConfig.load(config)))


def open_source(cfg: AgentConfig) -> Any:
    src = cfg.source
    try:
        if isinstance(src, CanSource):
            return open_can_source(interface=src.interface, channel=src.channel, mapping=src.mapping,
                                   dbc=src.dbc)
        return open_can_source(interface=None, channel=None, mapping=src.mapping, dbc=src.dbc,
                               log_file=src.log, realtime=src.realtime)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot open the {src.kind} signal source: {exc}") from exc


def command_executor(cfg: AgentConfig, source: Any) -> CommandHandler | None:
    """The car's executor, if it has (or is given the seeds of) a command keystore."""
    if not (cfg.platform_key or cfg.owner_key or cfg.keystore_path.exists()):
        return None
    from chelian.agent.actuation import car_actuators
    from chelian.agent.commands import CommandExecutor
    from chelian.agent.keystore import Keystore

    store = Keystore.open(cfg.keystore_path, cfg.vin, platform_key=cfg.platform_key, owner_key=cfg.owner_key)
    act = cfg.actuators
    actuators = car_actuators(source, cfg.vin, act.hooks, hook_timeout_s=act.hook_timeout_s, can=act.can)
    return CommandExecutor(cfg.vin, store, actuators)


async def serve(cfg: AgentConfig, stop: asyncio.Event | None = None) -> Agent:
    """Run until `stop` is set (or SIGTERM/SIGINT); returns the stopped agent."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    source = open_source(cfg)
    db = QueueDB(cfg.queue_path)
    try:
        car = Agent(cfg.vin, cfg.link(), source, db.outbox(cfg.vin), policy=cfg.policy_table(),
                    commands=command_executor(cfg, source), commands_in_thread=True)
        running = asyncio.create_task(car.run(rate_hz=cfg.rate_hz))
        actuators = getattr(car.commands, "actuators", None)
        if actuators is not None and hasattr(actuators, "describe"):
            console.print(actuators.describe(), markup=False, highlight=False, soft_wrap=True)
        console.print(f"agent {cfg.vin} -> {cfg.mqtt_url} ({cfg.source.kind} source, {cfg.rate_hz:g} Hz, "
                      f"{len(car.outbox)} queued); Ctrl-C to stop", markup=False, highlight=False,
                      soft_wrap=True)
        await stop.wait()
        await car.stop()
        await running
        console.print(f"stopped: {car.delivered} messages delivered, {len(car.outbox)} left queued",
                      markup=False, highlight=False)
        return car
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        source.stop()
        db.close()
