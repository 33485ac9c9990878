"""Migration 0002 on both databases: matches storage/tables.py exactly, and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from chelian.storage.db import alembic_config, make_engine, upgrade
from chelian.storage.tables import metadata

TABLES = {"signing_keys", "agent_keys", "command_counters", "commands"}


def test_0002_matches_the_tables_and_round_trips(database_url):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            only_ours = {"include_object": lambda _obj, name, type_, _reflected, _compare_to:
                         type_ != "table" or name in TABLES}
            diff = compare_metadata(MigrationContext.configure(conn, opts=only_ours), metadata)
        assert diff == [], "migration 0002 and storage/tables.py disagree"
        command.downgrade(alembic_config(database_url), "0001")
        assert TABLES.isdisjoint(inspect(engine).get_table_names())
        upgrade(database_url)
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
