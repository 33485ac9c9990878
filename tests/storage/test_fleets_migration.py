"""Migration 0005 on both databases: matches storage/tables_fleets.py exactly, and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from chelian.storage import tables_fleets
from chelian.storage.db import alembic_config, make_engine, upgrade

TABLES = {"fleets", "fleet_vehicles", "fleet_operators"}


def test_0005_matches_the_tables_and_round_trips(database_url):
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            only_ours = {"include_object": lambda _obj, name, type_, _reflected, _compare_to:
                         type_ != "table" or name in TABLES}
            diff = compare_metadata(MigrationContext.configure(conn, opts=only_ours), tables_fleets.metadata)
        assert diff == [], "migration 0005 and storage/tables_fleets.py disagree"
        command.downgrade(alembic_config(database_url), "0004")
        remaining = set(inspect(engine).get_table_names())
        assert TABLES.isdisjoint(remaining) and "vehicles" in remaining
        upgrade(database_url)
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
