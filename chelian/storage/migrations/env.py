"""Alembic environment: the URL comes from chelian's settings, never from an ini file."""

from alembic import context
from chelian.storage.db import make_engine
from chelian.storage import tables_safety  # noqa: F401 - registers the safety tables on metadata
from chelian.storage.tables import metadata
import chelian.storage.tables_rules  # noqa: F401  (registers the rules tables on metadata)
import chelian.storage.tables_fleets  # noqa: F401  (registers the fleet tables on metadata)

config = context.config


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # render_as_batch lets later migrations ALTER tables on SQLite too.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
