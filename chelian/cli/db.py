"""`chelian db ...`: the database schema."""

from __future__ import annotations

import typer
from alembic.runtime.migration import MigrationContext

from chelian.cli.common import console, database, safe_url, with_settings
from chelian.config import Settings

app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)


@app.command("upgrade")
@with_settings()
def upgrade(settings: Settings) -> None:
    """Create or upgrade the database schema to the latest version (safe to run again)."""
    with database(settings, always_upgrade=True) as engine, engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    console.print(f"database {safe_url(settings.effective_database_url)} is at revision {revision}",
                  markup=False, highlight=False, soft_wrap=True)
