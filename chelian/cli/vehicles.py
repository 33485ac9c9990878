"""`chelian vehicle ...`: registering cars and handing them their broker credentials.

The credentials are printed exactly once (chelian keeps only a slow hash), as JSON for
scripts (`--json`, the one line on stdout) or as a table for people.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from chelian.cli.common import console, database, err_console, external_broker_hint, with_settings
from chelian.config import Settings
from chelian.services.fleet.provisioning import CarCredentials, provision_for_email, rotate_secret
from chelian.services.fleet.sim_fleet import vehicles_of
from chelian.storage.repositories.vehicles import Vehicle

app = typer.Typer(help="Manage vehicles: register cars and issue their broker credentials.",
                  no_args_is_help=True)

Vin = Annotated[str, typer.Option("--vin", help="The 17-character Vehicle Identification Number.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
SHOWN_ONCE = ("The password is shown only once: chelian stores just a hash of it. If it is lost, "
              "`chelian vehicle rotate-secret --vin {vin}` issues a new one.")


@app.command("add")
@with_settings(broker=True)
def add(
    settings: Settings,
    vin: Vin,
    make: Annotated[str, typer.Option(help="Manufacturer, e.g. Ford.")],
    model: Annotated[str, typer.Option(help="Model, e.g. Focus.")],
    year: Annotated[int, typer.Option(help="Model year.")],
    owner: Annotated[str, typer.Option(help="E-mail of the user who owns the car (see `chelian user add`).")],
    as_json: AsJson = False,
) -> None:
    """Register a car to its owner and print its MQTT credentials (the password only this once)."""
    with database(settings) as engine:
        _, creds = provision_for_email(engine, owner_email=owner, vin=vin, make=make, model=model, year=year,
                                       mqtt_url=settings.car_mqtt_url)
    _show_credentials(creds, as_json, f"registered {creds.vin} ({make} {model} {year}) for {owner}")
    external_broker_hint(settings, "lets the car in")


@app.command("rotate-secret")
@with_settings(broker=True)
def rotate(settings: Settings, vin: Vin, as_json: AsJson = False) -> None:
    """Revoke a car's MQTT password and issue a new one (lost or leaked secret)."""
    with database(settings) as engine:
        creds = rotate_secret(engine, vin, settings.car_mqtt_url)
    if settings.embedded_broker:
        headline = (f"new credentials for {creds.vin}; the embedded broker refuses the old password "
                    "within 30 s and cuts connections that use it")
    else:
        headline = f"new credentials for {creds.vin}"
    _show_credentials(creds, as_json, headline)
    external_broker_hint(settings, "takes the new password and refuses the old one")


@app.command("list")
@with_settings()
def list_(
    settings: Settings,
    owner: Annotated[str, typer.Option(help="E-mail of the owner whose vehicles to list.")],
    as_json: AsJson = False,
) -> None:
    """List an owner's vehicles and whether each is online."""
    with database(settings) as engine:
        cars = vehicles_of(engine, owner)
    if as_json:
        typer.echo(json.dumps([_row(v) for v in cars]))
        return
    table = Table("VIN", "make", "model", "year", "status", "status since (UTC)",
                  title=f"vehicles of {owner}")
    for v in cars:
        row = _row(v)
        table.add_row(v.vin, v.make, v.model, str(v.year), row["status"], row["status_at"] or "-")
    console.print(table if cars else f"{owner} has no vehicles")


def _row(v: Vehicle) -> dict[str, object]:
    since = None
    if v.status_ms is not None:
        since = datetime.fromtimestamp(v.status_ms / 1000, UTC).isoformat(timespec="seconds")
    return {"vin": v.vin, "make": v.make, "model": v.model, "year": v.year,
            "status": "online" if v.online else "offline", "status_at": since}


def _show_credentials(creds: CarCredentials, as_json: bool, headline: str) -> None:
    if as_json:
        typer.echo(json.dumps(creds.to_wire()))  # stdout carries only the JSON; notes go to stderr
    else:
        console.print(headline, markup=False, highlight=False, soft_wrap=True)
        table = Table(show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", no_wrap=True)
        for field, value in creds.to_wire().items():
            table.add_row(field, value)
        console.print(table)
    err_console.print(SHOWN_ONCE.format(vin=creds.vin), style="yellow", markup=False, highlight=False,
                      soft_wrap=True)
