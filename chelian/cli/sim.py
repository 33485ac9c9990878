"""`chelian sim`: register a simulated fleet to an owner and drive it until Ctrl-C."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from chelian.cli.common import console, database, err_console, external_broker_hint, with_settings
from chelian.config import Settings
from chelian.errors import ConfigError
from chelian.services.fleet.sim_fleet import MAX_SIM_CARS, provision_fleet
from chelian.sim.behaviours import SCENARIOS, Scenario, parse_scenario
from chelian.sim.commands import command_executors
from chelian.sim.fleet import Fleet, SimCarConfig
from chelian.sim.roads import RoadNetwork

CONNECT_GRACE_S = 10.0
REPORT_EVERY_S = 30.0

Owner = Annotated[str, typer.Option(help="E-mail of the user who owns the simulated cars.")]
Cars = Annotated[int, typer.Option(min=1, max=MAX_SIM_CARS, help="How many cars to drive.")]
RateHz = Annotated[float, typer.Option(min=0.01, max=50, help="Telemetry messages per car per second.")]
Seed = Annotated[int, typer.Option(help="Same seed, same streets and same driving.")]
MqttVersion = Annotated[int, typer.Option(min=4, max=5, help="4 for MQTT 3.1.1, 5 for MQTT 5.")]
MapFile = Annotated[Path | None, typer.Option(
    "--map", help="An OpenStreetMap extract (.osm.pbf): drive on its roads instead of a generated grid.")]
Scenarios = Annotated[list[str] | None, typer.Option(
    # `\\[` keeps Rich (typer's help renderer) from reading [@SECONDS] as markup and dropping it.
    "--scenario", help=f"NAME:CAR\\[@SECONDS], repeatable: car CAR (0-based) has it happen after SECONDS "
                       f"(default 60). Names: {', '.join(sorted(SCENARIOS))}. E.g. --scenario crash:3")]


@with_settings(broker=True)
def sim(
    settings: Settings,
    owner: Owner,
    cars: Cars = 3,
    rate_hz: RateHz = 1.0,
    seed: Seed = 0,
    mqtt_version: MqttVersion = 4,
    map: MapFile = None,  # noqa: A002 - the option is --map
    scenario: Scenarios = None,
) -> None:
    """Drive simulated cars that stream telemetry to the broker, until Ctrl-C.

    The owner's first N simulated cars are registered on first use and get fresh
    credentials on every run; each runs the real vehicle agent (the one `chelian agent` runs
    in a car), on an OpenStreetMap extract's roads (--map) or a street grid around Ann Arbor.
    """
    scenarios = scenarios_option(scenario or [], cars)
    network = road_network_option(map)
    with database(settings) as engine:
        credentials = provision_fleet(engine, owner, cars, settings.car_mqtt_url)
    external_broker_hint(settings, "lets the simulated cars in (they get fresh secrets on every run)")
    host, port = settings.car_broker_host_port
    fleet = Fleet([SimCarConfig.from_credentials(c) for c in credentials], host, port, rate_hz, seed=seed,
                  seq_path=settings.data_dir / "sim" / "seq.json", mqtt_version=mqtt_version, network=network,
                  scenarios=scenarios, commands=command_executors(settings.data_dir))
    where = f"the roads of {map.name}" if map is not None else "a street grid"
    plans = "".join(f"; car {s.car}: {s.name} after {s.after_s:g} s" for s in scenarios)
    console.print(f"driving {cars} car(s) of {owner} on {where} against mqtt://{host}:{port} "
                  f"at {rate_hz:g} Hz{plans}; Ctrl-C to stop", markup=False, highlight=False, soft_wrap=True)
    fleet.start()
    try:
        with stop_on_signals():
            _drive(fleet, cars, host, port)
    except KeyboardInterrupt:
        console.print("stopping: cars report offline and disconnect", markup=False, highlight=False)
    finally:
        fleet.stop()


def scenarios_option(specs: list[str], cars: int) -> list[Scenario]:
    out = []
    for text in specs:
        try:
            spec = parse_scenario(text)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if spec.car >= cars:
            raise ConfigError(f"--scenario {text}: there are only cars 0 to {cars - 1}")
        out.append(spec)
    return out


def road_network_option(path: Path | None) -> RoadNetwork | None:
    if path is None:
        return None
    from chelian.sim.osm import OsmRoads

    try:
        return OsmRoads.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use --map {path}: {exc}") from exc


def _drive(fleet: Fleet, cars: int, host: str, port: int) -> None:
    if not fleet.wait_connected(CONNECT_GRACE_S):
        err_console.print(f"only {fleet.connected} of {cars} cars connected to {host}:{port} so far; "
                          "is the broker running (`chelian serve`) and does it know their credentials? "
                          "Still trying.", style="yellow", markup=False, highlight=False, soft_wrap=True)
    while True:
        time.sleep(REPORT_EVERY_S)
        console.print(f"{fleet.connected}/{cars} connected, {fleet.published} messages sent"
                      + (f", {fleet.dropped} dropped (offline queue full)" if fleet.dropped else ""),
                      markup=False, highlight=False)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM (service managers, `docker stop`) and SIGINT stop the fleet as Ctrl-C does, so
    cars say goodbye; SIGINT is set explicitly because a shell's background jobs ignore it."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
