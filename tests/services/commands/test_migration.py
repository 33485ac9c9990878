"""Migration 0002 on both databases: matches storage/tables.py exactly, and downgrades cleanly."""

from __future__ import annotations

from chelian.storage.db import make_engine
from chelian.storage.tables import metadata
from tests.storage.migration_check import check_migration

TABLES = {"signing_keys", "agent_keys", "command_counters", "commands"}


def test_0002_matches_the_tables_and_round_trips(database_url):
    engine = make_engine(database_url)
    try:
        check_migration(engine, database_url, revision="0002", previous="0001", tables=TABLES,
                        metadata=metadata)
    finally:
        engine.dispose()
