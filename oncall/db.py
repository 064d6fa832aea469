"""The database engine: SQLite (aiosqlite, the embedded default) or PostgreSQL (asyncpg).

Every unit of work is one synchronous function over a Core `Connection`, run in one
transaction by `Database.run` (SQLAlchemy's `run_sync`): the whole transaction executes in
one go in the driver's context instead of one await per statement.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from oncall.config import DatabaseSettings
from oncall.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that say "try again later", not "your request is wrong".
TRANSIENT = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError,
             asyncio.TimeoutError, ConnectionError)


def is_sqlite(url: str) -> bool:
    """Return whether `url` names the embedded SQLite backend."""
    return url.startswith("sqlite")


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Return an engine for `settings`, with SQLite tuned for one writer and durability.

    SQLite gets one pooled connection (it has one writer anyway, and one connection means no
    in-process lock contention), WAL, synchronous=NORMAL, foreign keys and a busy timeout;
    transactions start with BEGIN IMMEDIATE so a second process waits instead of failing.
    """
    url = settings.url
    if is_sqlite(url):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_async_engine(url, poolclass=AsyncAdaptedQueuePool, pool_size=1,
                                     max_overflow=0, pool_timeout=30)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "busy_timeout=5000"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 10}
    if settings.schema:
        connect_args["server_settings"] = {"search_path": settings.schema}
    return create_async_engine(url, pool_size=10, max_overflow=5, pool_timeout=10,
                               pool_pre_ping=True, connect_args=connect_args)


class Database:
    """The engine plus the one way the service runs a transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._in_flight: set[asyncio.Task[Any]] = set()

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Return `work(connection, *args)`, run in one transaction that commits on success.

        The transaction runs to its commit or rollback even when the caller is cancelled
        (a shutdown, a timeout): a connection abandoned between two statements would stay
        checked out "idle in transaction", holding its locks.
        Raises Unavailable when the database is transiently unreachable or busy; any other
        error propagates and rolls the transaction back.
        """
        task = asyncio.ensure_future(self._transaction(work, *args))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        try:
            return await asyncio.shield(task)
        except exc.IntegrityError:
            raise
        except TRANSIENT as error:
            log.warning("database unavailable: %s", type(error).__name__)
            raise Unavailable("database unavailable, retry later") from error

    async def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(work, *args)

    async def ping(self) -> float:
        """Return the round-trip time of `SELECT 1` in seconds; raises on failure."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return time.perf_counter() - started

    async def close(self) -> None:
        """Wait for transactions under way, then close every connection."""
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))
        await self.engine.dispose()
