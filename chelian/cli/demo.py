"""`chelian demo`: the platform plus a simulated fleet, and a login to look at it with."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

import typer

from chelian.cli.common import console, with_settings
from chelian.cli.serve import HttpHost, HttpPort, describe, settings_with_http
from chelian.cli.sim import MapFile, Scenarios, road_network_option, scenarios_option, stop_on_signals
from chelian.config import Settings
from chelian.errors import ConflictError
from chelian.runtime import Platform
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.sim_fleet import MAX_SIM_CARS, provision_fleet
from chelian.sim.commands import command_executors
from chelian.sim.fleet import Fleet, SimCarConfig

DEMO_EMAIL = "demo@chelian.local"
PASSWORD_FILE = "demo-password"


def demo_login(settings: Settings, platform: Platform) -> str:
    """The demo owner's password: created with the account, kept (0600) in the data dir."""
    path = settings.data_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(9)
    try:
        sign_up(platform.engine, DEMO_EMAIL, password)
    except ConflictError:  # the account exists but its password file was deleted: new data dir needed
        raise ConflictError(f"{DEMO_EMAIL} exists but {path} is gone; use a fresh --data-dir") from None
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


@with_settings(broker=True)
def demo(settings: Settings,
         cars: Annotated[int, typer.Option(min=1, max=MAX_SIM_CARS, help="Simulated cars to drive.")] = 5,
         rate_hz: Annotated[float, typer.Option(min=0.1, max=10, help="Messages per car per second.")] = 1.0,
         http_host: HttpHost = None, http_port: HttpPort = None,
         map: MapFile = None,  # noqa: A002 - the option is --map
         scenario: Scenarios = None) -> None:
    """Run the platform with a simulated fleet and print where to look and how to log in.

    The cars run the real vehicle agent (signed commands included) on a street grid, or on
    an OpenStreetMap extract's roads with --map; the console draws the same roads.
    """
    scenarios = scenarios_option(scenario or [], cars)
    network = road_network_option(map)
    platform = Platform(settings_with_http(settings, http_host, http_port)).start()
    fleet = None
    try:
        password = demo_login(settings, platform)
        credentials = provision_fleet(platform.engine, DEMO_EMAIL, cars, settings.car_mqtt_url)
        host, port = settings.car_broker_host_port
        fleet = Fleet([SimCarConfig.from_credentials(c) for c in credentials], host, port, rate_hz,
                      seq_path=settings.data_dir / "sim" / "seq.json", network=network, scenarios=scenarios,
                      commands=command_executors(settings.data_dir))
        platform.app.state.road_network = fleet.network  # the console's basemap: the roads the cars drive
        fleet.start()
        fleet.wait_connected(10)
        describe(platform)
        console.print(f"\nconsole       {platform.api_url}/   (API docs: {platform.api_url}/docs)",
                      markup=False, highlight=False)
        console.print(f"login         {DEMO_EMAIL} / {password}", markup=False, highlight=False)
        console.print(f"fleet         {fleet.connected}/{cars} simulated cars driving at {rate_hz:g} Hz\n",
                      markup=False, highlight=False)
        console.print("try:  TOKEN=$(curl -s -d username=" + DEMO_EMAIL + " -d password=" + password + " "
                      + platform.api_url + "/api/v1/auth/token | python3 -c 'import sys,json;"
                      "print(json.load(sys.stdin)[\"access_token\"])')", markup=False, highlight=False,
                      soft_wrap=True)
        console.print(f"      curl -s -H \"Authorization: Bearer $TOKEN\" "
                      f"{platform.api_url}/api/v1/vehicles\nCtrl-C to stop.", markup=False, highlight=False,
                      soft_wrap=True)
        with stop_on_signals():
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping", markup=False, highlight=False)
    finally:
        if fleet is not None:
            fleet.stop()
        platform.stop()
