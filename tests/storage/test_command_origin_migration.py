"""Migration 0007 on both databases: `commands.origin` as storage/tables.py declares it; commands
recorded before it read `user` (they were all asked for by their user), and it downgrades."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from chelian.storage.db import alembic_config, make_engine, upgrade
from chelian.storage.tables import metadata


def test_0007_matches_the_table_defaults_old_commands_to_user_and_round_trips(database_url):
    engine = make_engine(database_url)
    try:
        only_commands = {"include_object": lambda _o, name, type_, _r, _c:
                         type_ != "table" or name == "commands"}
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts=only_commands), metadata) == []
        command.downgrade(alembic_config(database_url), "0006")
        assert "origin" not in {c["name"] for c in inspect(engine).get_columns("commands")}
        with engine.begin() as conn:  # a command from before the migration
            conn.execute(text("INSERT INTO users (email, password_hash, created_ms) "
                              "VALUES ('a@x.org', 'h', 1)"))
            conn.execute(text("INSERT INTO vehicles (vin, make, model, year, owner_id, created_ms) "
                              "VALUES ('1M8GDM9AXKP042788', 'Ford', 'Focus', 2019, 1, 1)"))
            conn.execute(text(
                "INSERT INTO commands (id, vehicle_id, type, args, status, signer, kid, counter, "
                "requested_by, request_hash, payload, env_hash, created_ms, issued_ms, expires_ms, attempts) "
                "VALUES "
                "('c1', 1, 'lock', '{}', 'succeeded', 'platform', 'k', 1, 1, 'h', :p, 'e', 1, 1, 2, 1)"),
                {"p": b"{}"})
        upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT origin FROM commands WHERE id = 'c1'")).scalar_one() == "user"
    finally:
        engine.dispose()
