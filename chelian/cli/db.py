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


@app.command("purge")
@with_settings()
def purge(settings: Settings,
          older_than_days: float | None = typer.Option(None, help="Delete telemetry older than this many days. "
                                                                  "(default: the telemetry_retention_days setting)")
          ) -> None:
    """Delete old telemetry and dead-lettered messages now, in small batches (ingest keeps running)."""
    from chelian.services.retention.purge import DAY_MS, purge_telemetry
    from chelian.storage.db import now_ms

    days = older_than_days if older_than_days is not None else settings.telemetry_retention_days
    with database(settings) as engine:
        report = purge_telemetry(engine, now_ms() - int(days * DAY_MS), settings.purge_batch_rows)
    console.print(f"deleted {report.telemetry_rows} telemetry rows and {report.rejected_rows} dead letters "
                  f"older than {days:g} days in {report.batches} batches", markup=False, highlight=False)
