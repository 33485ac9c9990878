"""`chelian user ...`: the people who own cars and log in to the API."""

from __future__ import annotations

from typing import Annotated

import typer

from chelian.cli.common import console, database, with_settings
from chelian.config import Settings
from chelian.services.accounts.signup import sign_up

app = typer.Typer(help="Manage users: the people who own vehicles and log in to the API.",
                  no_args_is_help=True)


@app.command("add")
@with_settings()
def add(
    settings: Settings,
    email: Annotated[str, typer.Option(help="The user's e-mail address (their login).")],
    password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True,
        help="At least 8 characters; asked for (hidden) when not given.")],
) -> None:
    """Add a user who can own vehicles and log in to the API."""
    with database(settings) as engine:
        user = sign_up(engine, email, password)
    console.print(f"added user {user.email}", markup=False, highlight=False)
