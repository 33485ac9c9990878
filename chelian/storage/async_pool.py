"""Async PostgreSQL connections for work that runs on an event loop (the command hot path).

A worker thread per request costs GIL hand-offs that, on a busy API process, come to more than
the database round trips themselves (bench/commands.py); awaiting psycopg's async connection on
the event loop costs none. psycopg_pool's AsyncConnectionPool keeps the connections. A pool's
connections belong to the loop that opened them, so there is one pool per running loop (one in
`chelian serve`; tests run an app in several), opened on first use, closed by `close()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine


def conninfo(engine: Engine) -> str:
    """libpq's URL for a SQLAlchemy PostgreSQL engine (`postgresql+psycopg://` -> `postgresql://`)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class AsyncPools:
    def __init__(self, url: str, *, max_size: int, options: str = "") -> None:
        self.url = url
        self.max_size = max_size
        self.options = options  # libpq `options` for each connection (storage/db.py: CUSTOM_PLANS)
        self._pools: dict[asyncio.AbstractEventLoop, asyncio.Future[AsyncConnectionPool]] = {}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """An autocommit connection from this loop's pool."""
        loop = asyncio.get_running_loop()
        opening = self._pools.get(loop)
        if opening is None:  # set before the first await: concurrent first users share it
            opening = self._pools[loop] = loop.create_task(self._open())
        try:
            pool = await opening
        except BaseException:
            if self._pools.get(loop) is opening:  # the next request tries again (database down?)
                del self._pools[loop]
            raise
        async with pool.connection() as conn:
            yield conn

    async def _open(self) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(self.url, min_size=1, max_size=self.max_size, open=False,
                                   kwargs={"autocommit": True, "options": self.options},
                                   name="chelian-commands")
        await pool.open(wait=True)
        return pool

    async def close(self) -> None:
        """Close this loop's pool (each loop must close its own)."""
        opening = self._pools.pop(asyncio.get_running_loop(), None)
        if opening is not None:
            await (await opening).close()
