"""The `chelian` command: one entry point, command groups in their own modules.

Commands stay thin: they parse options, call a service, and print. The common options
(`--data-dir`, `--database-url`, `--mqtt-url`, `--mqtt-port`, `--config`) work before the
command name and after it; see `chelian.cli.common`.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from rich.logging import RichHandler

from chelian.cli import agent, broker, db, demo, fleets, serve, sim, users, vehicles
from chelian.cli.common import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    MqttPort,
    MqttUrl,
    err_console,
    remember_root_options,
)

app = typer.Typer(
    name="chelian",
    help="chelian 车联: an open, self-hosted connected-car platform. Cars stream COVESA VSS signals "
         "over MQTT; owners query history and state over a REST API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include passwords and secrets
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"chelian {version('chelian')}")
        except PackageNotFoundError:
            typer.echo("chelian (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    mqtt_url: MqttUrl = None,
    mqtt_port: MqttPort = None,
    config: ConfigFile = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what is happening (INFO).")] = False,
    _show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False,
) -> None:
    """chelian 车联: an open, self-hosted connected-car platform."""
    remember_root_options(ctx, data_dir=data_dir, database_url=database_url, mqtt_url=mqtt_url,
                          mqtt_port=mqtt_port, config=config)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)], force=True)


app.add_typer(users.app, name="user")
app.add_typer(vehicles.app, name="vehicle")
app.add_typer(fleets.app, name="fleet")
app.add_typer(db.app, name="db")
app.add_typer(broker.app, name="broker")
app.command("sim")(sim.sim)
app.command("agent")(agent.agent)

app.command("serve")(serve.serve)
app.command("ingest")(serve.ingest)
app.command("demo")(demo.demo)
