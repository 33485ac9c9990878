"""Migration 0005 on both databases: matches storage/tables_fleets.py exactly, and downgrades cleanly."""

from __future__ import annotations

from chelian.storage import tables_fleets
from chelian.storage.db import make_engine
from tests.storage.migration_check import check_migration

TABLES = {"fleets", "fleet_vehicles", "fleet_operators"}


def test_0005_matches_the_tables_and_round_trips(database_url):
    engine = make_engine(database_url)
    try:
        remaining = check_migration(engine, database_url, revision="0005", previous="0004", tables=TABLES,
                                    metadata=tables_fleets.metadata)
        assert "vehicles" in remaining
    finally:
        engine.dispose()
