"""Engines built from Settings (never at import time), and the migration entry point.

SQLite runs in WAL mode with a busy timeout so the API can read while ingest writes.
"""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, inspect

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

CUSTOM_PLANS = "-c plan_cache_mode=force_custom_plan"
"""libpq `options` for the command path's PostgreSQL connections: plan every execution for its
parameters and the table as it is now. psycopg prepares a statement after 5 runs, and after 5
more PostgreSQL may keep a generic plan, made for the table as it was then. In a fresh install
`commands` is nearly empty then, so the kept plan settled acks with a sequential scan, and kept
doing so as the table grew, until autovacuum's next ANALYZE: bench/commands.py measured seq scans
reading 38 million rows in one minute and a p99 that grew from 10 to 64 ms. A custom plan
costs a few tens of microseconds of planning per statement on this path, where an unchanged
cached plan may cost a scan of the whole table."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`; for SQLite, the folder is created and WAL switched on."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (what `chelian db upgrade` runs)."""
    command.upgrade(alembic_config(url), revision)


def is_migrated(engine: Engine) -> bool:
    return inspect(engine).has_table("alembic_version")
