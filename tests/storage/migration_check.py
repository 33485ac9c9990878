"""One check for every migration: it builds exactly the tables the code declares, and downgrades.

`compare_metadata` is limited to the migration's own tables, so later migrations' tables (and
the other metadata objects) do not count as differences.
"""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect

from chelian.storage.db import alembic_config, upgrade


def check_migration(engine: Engine, database_url: str, *, revision: str, previous: str,
                    tables: set[str], metadata: MetaData) -> set[str]:
    """Assert migration `revision` matches `tables` of `metadata` and round-trips down to
    `previous` and back up; returns the tables left while downgraded."""
    with engine.connect() as conn:
        only_ours = {"include_object": lambda _obj, name, type_, _reflected, _compare_to:
                     type_ != "table" or name in tables}
        diff = compare_metadata(MigrationContext.configure(conn, opts=only_ours), metadata)
    assert diff == [], f"migration {revision} and its table definitions disagree"
    command.downgrade(alembic_config(database_url), previous)
    remaining = set(inspect(engine).get_table_names())
    assert tables.isdisjoint(remaining)
    upgrade(database_url)
    assert tables <= set(inspect(engine).get_table_names())
    return remaining
