"""`chelian fleet ...`: gather cars into fleets and name the operators who run them.

The administrator's tool (the API only shows operators their fleets): an operator reads and
commands every car of their fleets as an owner would, while each car keeps its legal owner.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from chelian.cli.common import console, database, with_settings
from chelian.config import Settings
from chelian.services.fleet import fleets

app = typer.Typer(help="Manage fleets: groups of cars that operators may read and command.",
                  no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The fleet's name.", show_default=False)]
Vins = Annotated[list[str], typer.Argument(help="One or more VINs of registered cars.", show_default=False)]
Email = Annotated[str, typer.Argument(help="E-mail of a user (see `chelian user add`).", show_default=False)]


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command("create")
@with_settings()
def create(settings: Settings, name: Name) -> None:
    """Create an empty fleet."""
    with database(settings) as engine:
        fleet = fleets.create_fleet(engine, name)
    _say(f"created fleet {fleet.name}")


@app.command("add-vehicle")
@with_settings()
def add_vehicle(settings: Settings, name: Name, vins: Vins) -> None:
    """Put cars in the fleet (a car is in one fleet at most); all or none."""
    with database(settings) as engine:
        added = fleets.add_vehicles(engine, name, vins)
    _say(f"added {', '.join(added)} to fleet {name}" if added else f"already in fleet {name}: nothing to do")


@app.command("remove-vehicle")
@with_settings()
def remove_vehicle(settings: Settings, name: Name, vins: Vins) -> None:
    """Take cars out of the fleet: its operators lose them (the API at once, the live map within a minute)."""
    with database(settings) as engine:
        fleets.remove_vehicles(engine, name, vins)
    _say(f"removed {', '.join(v.strip().upper() for v in vins)} from fleet {name}")


@app.command("add-operator")
@with_settings()
def add_operator(settings: Settings, name: Name, email: Email) -> None:
    """Let a user read and command every car of the fleet."""
    with database(settings) as engine:
        added = fleets.add_operator(engine, name, email)
    _say(f"{email} operates fleet {name}" + ("" if added else " (already did)"))


@app.command("remove-operator")
@with_settings()
def remove_operator(settings: Settings, name: Name, email: Email) -> None:
    """Stop a user operating the fleet."""
    with database(settings) as engine:
        fleets.remove_operator(engine, name, email)
    _say(f"{email} no longer operates fleet {name}")


@app.command("list")
@with_settings()
def list_(
    settings: Settings,
    as_json: Annotated[bool, typer.Option("--json",
                                          help="Print machine-readable JSON instead of a table.")] = False,
) -> None:
    """List every fleet with its cars (and their owners) and its operators."""
    with database(settings) as engine:
        found = fleets.overview(engine)
    if as_json:
        typer.echo(json.dumps([{"name": f.fleet.name, "operators": f.operators,
                                "vehicles": [{"vin": c.vin, "owner": c.owner_email} for c in f.cars]}
                               for f in found]))
        return
    if not found:
        _say("no fleets yet: create one with `chelian fleet create NAME`")
        return
    table = Table(title="fleets")
    for column in ("fleet", "operators", "VIN", "car", "owner"):
        table.add_column(column, no_wrap=column == "VIN")  # a VIN is copied whole, never wrapped
    for f in found:
        first = [f.fleet.name, "\n".join(f.operators) or "-"]
        for c in f.cars or [None]:
            car = [c.vin, f"{c.year} {c.make} {c.model}", c.owner_email] if c else ["-", "-", "-"]
            table.add_row(*first, *car)
            first = ["", ""]
    console.print(table)
