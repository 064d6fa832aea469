"""The database engine and the one way the service runs a transaction.

Every unit of work is one synchronous function over a Core `Connection`, run in one
transaction by `Database.run`. On PostgreSQL that is SQLAlchemy's `run_sync` over asyncpg.
On SQLite, `run_sync` over aiosqlite would hop to aiosqlite's thread and back for every
DBAPI call, so the whole transaction instead runs as one call in a single database thread,
over the standard `sqlite3` driver on the same file, with a group commit (`oncall.db.batch`).
aiosqlite stays the driver of the async engine that runs migrations; the settings name the
database the same way either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, exc, select
from sqlalchemy.engine import Connection as Connection  # the type units of work take
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

from oncall.db import jsoncodec
from oncall.db.batch import BatchRunner, GroupCommit
from oncall.db.fastpath import execute_sql, on_stdlib_sqlite
from oncall.db.models import metadata
from oncall.errors import ConstraintViolated, Unavailable
from oncall.settings import DatabaseSettings

log = logging.getLogger(__name__)
# Seconds a shutdown waits for transactions under way.
CLOSE_GRACE = 10.0
T = TypeVar("T")

# The JSON columns (labels, annotations, timeline details) through orjson.
JSON_CODEC = {"json_serializer": jsoncodec.dumps, "json_deserializer": jsoncodec.loads}

# Errors that say "try again later", not "your request is wrong".
TRANSIENT = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    # The transaction's connection died under it and it went on (a savepoint's handler
    # catching the error): still the database's fault, not the input's.
    exc.PendingRollbackError,
    OSError,
    asyncio.TimeoutError,
    ConnectionError,
)


def is_sqlite(url: str) -> bool:
    """Return whether `url` names the embedded SQLite backend."""
    return url.startswith("sqlite")


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Return an engine for `settings`, with SQLite tuned for one writer and durability.

    SQLite gets one pooled connection (it has one writer anyway), WAL, synchronous=NORMAL,
    foreign keys and a busy timeout; transactions start with BEGIN IMMEDIATE so a second
    process waits instead of failing.
    """
    url = settings.url
    if is_sqlite(url):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_async_engine(
            url,
            poolclass=AsyncAdaptedQueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=30,
            **JSON_CODEC,
        )
        _tune_sqlite(engine.sync_engine)
        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 10}
    if settings.schema:
        connect_args["server_settings"] = {"search_path": settings.schema}
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=5,
        pool_timeout=10,
        pool_pre_ping=True,
        connect_args=connect_args,
        **JSON_CODEC,
    )


def _tune_sqlite(engine: Engine) -> None:
    """Give every connection of `engine` WAL, synchronous=NORMAL, foreign keys, a busy
    timeout and temporary files in memory, and start transactions with BEGIN IMMEDIATE so
    that a second process waits for the write lock instead of failing halfway through a
    transaction.

    Temporary files in memory: SQLite journals every page a savepoint changes (each unit
    of a group commit runs in one) and spills that journal to a file past 64 KiB, at a
    cost of more write calls than the WAL's own."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "temp_store=MEMORY",
            "busy_timeout=5000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if on_stdlib_sqlite(connection):
            execute_sql(connection, "BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_url(engine: AsyncEngine) -> str:
    """Return the stdlib `sqlite3` URL of the file an aiosqlite engine opens."""
    return engine.url.set(drivername="sqlite").render_as_string(hide_password=False)


def sqlite_engine(url: str) -> Engine:
    """Return a synchronous engine on a stdlib `sqlite3` URL, with one connection, tuned as
    `make_engine` tunes SQLite: the database thread's."""
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=30,
        connect_args={"check_same_thread": False},
        **JSON_CODEC,
    )
    _tune_sqlite(engine)
    return engine


class Database:
    """The engine plus the one way the service runs a transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Never in a message: a driver's error text may quote what it was given.
        self._password = engine.url.password or ""
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._group: GroupCommit | None = None
        if engine.dialect.name == "sqlite":
            self._group = GroupCommit(BatchRunner(sqlite_engine(sqlite_url(engine))))

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Return `work(connection, *args)`, run in one transaction that commits on success.

        The transaction runs to its commit or rollback even when the caller is cancelled
        (a shutdown, a timeout): a connection abandoned between two statements would stay
        checked out "idle in transaction", holding its locks.
        Raises ConstraintViolated when the transaction broke a constraint (a concurrent
        one won a race), and Unavailable naming the database for every other database
        error: unreachable, busy, or failing in a way that is not the request's fault (a
        missing table, a lost privilege, a driver error). Those are logged, and `ping`
        fails until it succeeds again. Any other error propagates. Each rolls the
        transaction back.
        """
        task: asyncio.Future[T]
        if self._group is not None:
            # A batch runs to its commit whatever happens to the waiting caller.
            task = self._group.submit(work, args)
        else:
            task = asyncio.shield(self._started(work, args))
        try:
            return await task
        except exc.IntegrityError as error:
            raise ConstraintViolated(str(error.orig)) from error
        except TRANSIENT as error:
            log.warning("database unavailable: %s", type(error).__name__)
            raise Unavailable("database unavailable, retry later") from error
        except exc.DBAPIError as error:
            # Not the input's fault (the ingest parsers make text storable): a 503, so the
            # sender retries and /health, whose probe reads every table, says "database".
            # Neither the answer nor the log carries the statement or its parameters.
            driver_error = type(error.orig).__name__
            log.error("database error: %s: %s", driver_error, self._reason(error.orig))
            raise Unavailable(f"database error ({driver_error}), retry later") from error

    def _reason(self, error: BaseException | None) -> str:
        """Return the first line of `error`'s text, shortened, the password masked."""
        text = (str(error).splitlines() or [""])[0][:300]
        return text.replace(self._password, "***") if self._password else text

    def _started(self, work: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
        task = asyncio.ensure_future(self._transaction(work, *args))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(work, *args)

    async def ping(self) -> float:
        """Return the round-trip time of one probe of every table in seconds; raises on
        failure (Unavailable naming the driver's error for a database error).

        The probe names every column of every table (an EXISTS over LIMIT 0, so no row is
        read): a dropped table or column, a schema behind the code, or a lost privilege fails
        /health, not only an unreachable server."""
        started = time.perf_counter()
        if self._group is not None:
            await self.run(_probe)
        else:
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(_PROBE)
            except exc.DBAPIError as error:
                raise Unavailable(
                    f"{type(error.orig).__name__}: {self._reason(error.orig)}"
                ) from error
        return time.perf_counter() - started

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Wait up to `grace` seconds for transactions under way, then close every
        connection (a transaction still waiting then, on a lock say, is rolled back with
        its connection: a shutdown must end)."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=grace)
        if self._in_flight:
            log.warning(
                "closing the database with transactions still under way",
                extra={"transactions": len(self._in_flight)},
            )
        if self._group is not None:
            await self._group.close()
        await self.engine.dispose()


_PROBE = select(*(select(*t.c).limit(0).exists() for t in metadata.sorted_tables))


def _probe(conn: Connection) -> None:
    conn.execute(_PROBE)
