"""Shared fixtures: a fresh, migrated database per test on each backend.

`database_url` is parametrised over SQLite (a file in tmp_path) and PostgreSQL (a new
database per test, cloned from a migrated template so each test costs one CREATE DATABASE).
PostgreSQL tests skip with the reason when no server answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from chelian.storage.db import make_engine, upgrade

PG_ADMIN_URL = os.environ.get("CHELIAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_TEMPLATE = f"chelian_tpl_{os.getpid()}"


def _pg_base(url: str) -> str:
    return url.rsplit("/", 1)[0]


def _pg_admin() -> Engine:
    return make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    try:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{_TEMPLATE}"')
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL here"
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    upgrade(f"{_pg_base(PG_ADMIN_URL)}/{_TEMPLATE}")
    yield _TEMPLATE
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
    admin.dispose()


def new_pg_database(template: str) -> tuple[str, str]:
    name = f"chelian_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.dispose()
    return name, f"{_pg_base(PG_ADMIN_URL)}/{name}"


def drop_pg_database(name: str) -> None:
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each kind, private to this test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chelian.db'}"
        upgrade(url)
        yield url
        return
    template = request.getfixturevalue("pg_template")
    name, url = new_pg_database(template)
    yield url
    drop_pg_database(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not present at {SHARED_DATA} (only on chelian developer machines)")
    return SHARED_DATA


# Broker fixtures (embedded amqtt, a private mosquitto) live in their own plugin module.
pytest_plugins = ["tests.fixtures_brokers"]
