"""The database engine: SQLite (the embedded default) or PostgreSQL (asyncpg).

Every unit of work is one synchronous function over a Core `Connection`, run in one
transaction by `Database.run`.

On PostgreSQL that is SQLAlchemy's `run_sync` over asyncpg. On SQLite, `run_sync` over
aiosqlite would still hop to aiosqlite's thread and back for every DBAPI call (measured:
about 90 hops for one 10-alert delivery, three quarters of its time), so the whole
transaction instead runs as one call in a single database thread, over the standard
`sqlite3` driver on the same file. aiosqlite stays the driver of the async engine that
runs migrations; the settings name the database the same way either way.

With `[database] writer = process` that thread only hands each batch to a writer process
(`oncall.writer`) and the transactions run there, on a second core, instead of sharing
this process's GIL with the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

from oncall import jsonfmt
from oncall.config import DatabaseSettings
from oncall.errors import Unavailable
from oncall.prepared import execute_sql, on_stdlib_sqlite, savepoint
from oncall.writer import RemoteWriter

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 32  # units of work per group commit on SQLite

# The JSON columns (labels, annotations, timeline details) through orjson: a new incident
# writes about thirty of them.
JSON_CODEC = {"json_serializer": jsonfmt.dumps, "json_deserializer": jsonfmt.loads}

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
                                     max_overflow=0, pool_timeout=30, **JSON_CODEC)
        _tune_sqlite(engine.sync_engine)
        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 10}
    if settings.schema:
        connect_args["server_settings"] = {"search_path": settings.schema}
    return create_async_engine(url, pool_size=10, max_overflow=5, pool_timeout=10,
                               pool_pre_ping=True, connect_args=connect_args, **JSON_CODEC)


def _tune_sqlite(engine: Engine) -> None:
    """Give every connection of `engine` WAL, synchronous=NORMAL, foreign keys, a busy
    timeout and temporary files in memory, and start transactions with BEGIN IMMEDIATE so
    that a second process waits for the write lock instead of failing halfway through a
    transaction.

    Temporary files in memory: SQLite journals every page a savepoint changes (each unit
    of a group commit and each first page run in one) and spilled that journal to a file
    past 64 KiB, which took more write calls than the WAL itself (strace while opening
    incidents: 81,758 writes to those files, 49,733 to the WAL)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                       "temp_store=MEMORY",
                       "busy_timeout=5000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if on_stdlib_sqlite(connection):
            execute_sql(connection, "BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_writer(engine: AsyncEngine) -> Engine:
    """Return a synchronous engine (stdlib `sqlite3`) on the file of an aiosqlite engine, with
    one connection, used only by the database writer."""
    return sqlite_engine(sqlite_url(engine))


def sqlite_url(engine: AsyncEngine) -> str:
    """Return the stdlib `sqlite3` URL of the file an aiosqlite engine opens."""
    return engine.url.set(drivername="sqlite").render_as_string(hide_password=False)


def sqlite_engine(url: str) -> Engine:
    """Return a synchronous engine on a stdlib `sqlite3` URL, with one connection, tuned as
    `make_engine` tunes SQLite."""
    writer = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0,
                           pool_timeout=30, connect_args={"check_same_thread": False},
                           **JSON_CODEC)
    _tune_sqlite(writer)
    return writer


class BatchRunner:
    """Runs batches of units of work on one SQLite connection, kept open: the writer.

    It lives in the database thread (`writer = thread`) or in the writer process
    (`oncall.writer`); either way one at a time.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def run_batch(self, units: list[tuple[Callable[..., Any], tuple[Any, ...]]]
                  ) -> list[tuple[bool, Any]]:
        """Run units of work; return (succeeded, result or error) of each. Raises when the
        commit itself fails (every unit then failed).

        One unit is one transaction. Several share one transaction and one commit, each in
        a savepoint of its own, so a unit that fails is rolled back alone: committing once
        for a batch saved a fifth of the time of opening an incident under load.
        """
        conn = self._connection()
        try:
            if len(units) == 1:
                work, args = units[0]
                try:
                    with conn.begin():
                        return [(True, work(conn, *args))]
                except Exception as error:
                    return [(False, error)]
            outcomes: list[tuple[bool, Any]] = []
            with conn.begin():
                for work, args in units:
                    try:
                        with savepoint(conn):
                            outcomes.append((True, work(conn, *args)))
                    except Exception as error:
                        outcomes.append((False, error))
            return outcomes
        finally:
            self._discard_if_left_open(conn)

    def _discard_if_left_open(self, conn: Connection) -> None:
        """Drop the connection when a failed COMMIT left SQLite's transaction open (SQLite
        keeps it open, e.g. on a deferred constraint, and SQLAlchemy does not roll it
        back): every later BEGIN on it would fail, and the writer with it, for good."""
        if conn.invalidated:
            return
        driver = conn.connection.driver_connection
        if driver is not None and getattr(driver, "in_transaction", False):
            log.error("a failed commit left its transaction open; reconnecting")
            conn.invalidate()  # closing the connection rolls the transaction back

    def submit(self, units: list[tuple[Callable[..., Any], tuple[Any, ...]]],
               done: Callable[[Any], None]) -> None:
        """Run a batch now and pass its outcomes, or the error that failed it, to `done`
        (the interface of `oncall.writer.RemoteWriter`)."""
        try:
            outcome: Any = self.run_batch(units)
        except BaseException as error:  # every unit fails with it; none is left waiting
            outcome = error
        done(outcome)

    def _connection(self) -> Connection:
        # The writer keeps its one connection open: checking it out of a pool and
        # resetting it for every transaction cost a fifth of a small transaction's time.
        if self._conn is None or self._conn.invalidated:
            if self._conn is not None:
                self._conn.close()
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()


class Database:
    """The engine plus the one way the service runs a transaction."""

    def __init__(self, engine: AsyncEngine, writer: str = "thread",
                 log_settings: tuple[str, str] = ("text", "info")) -> None:
        """On SQLite, `writer` says where transactions run: "process" (a child process,
        `oncall.writer`; units of work and their results must then pickle) or "thread"
        (the database thread itself). `log_settings` (format, level) are the child's."""
        self.engine = engine
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._writer: BatchRunner | RemoteWriter | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._queue: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._batches = 0  # batches handed to the writer and not answered yet
        self._max_batches = 1
        if engine.dialect.name == "sqlite":
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="oncall-db")
            if writer == "process":
                self._writer = RemoteWriter(sqlite_url(engine), *log_settings)
                self._thread.submit(self._writer.start)  # warm: the first request waits less
                # While the child runs one batch the next is formed and sent, so it never
                # waits for this process to hand it work.
                self._max_batches = 2
            else:
                self._writer = BatchRunner(sqlite_writer(engine))

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Return `work(connection, *args)`, run in one transaction that commits on success.

        The transaction runs to its commit or rollback even when the caller is cancelled
        (a shutdown, a timeout): a connection abandoned between two statements would stay
        checked out "idle in transaction", holding its locks.
        Raises Unavailable when the database is transiently unreachable or busy; any other
        error propagates and rolls the transaction back.
        """
        task: asyncio.Future[T]
        if self._thread is not None:
            task = asyncio.get_running_loop().create_future()
            self._queue.append((work, args, task))
            self._next_batch()
        else:
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

    def _next_batch(self) -> None:
        """Hand the queued units of work to the writer, unless it is busy: what queues up
        meanwhile goes in the next batch (a group commit)."""
        assert self._thread is not None and self._writer is not None
        loop = asyncio.get_running_loop()
        while self._queue and self._batches < self._max_batches:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._batches += 1
            settled = loop.create_future()
            self._in_flight.add(settled)
            finished = functools.partial(self._finished, batch, settled)
            # The writer calls back from its own threads.
            self._thread.submit(self._writer.submit, [(work, args) for work, args, _ in batch],
                                functools.partial(loop.call_soon_threadsafe, finished))

    def _finished(self, batch: list[tuple[Any, Any, asyncio.Future[Any]]],
                  settled: asyncio.Future[None], outcome: Any) -> None:
        """Settle each unit of an answered batch (`outcome` is the outcomes, or the error
        that failed the whole batch), then hand over the next."""
        self._in_flight.discard(settled)
        settled.set_result(None)
        self._batches -= 1
        outcomes = ([(False, outcome)] * len(batch) if isinstance(outcome, BaseException)
                    else outcome)
        for (_, _, waiter), (ok, value) in zip(batch, outcomes, strict=True):
            if waiter.done():
                continue
            if ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)
        self._next_batch()

    def _close_writer(self) -> None:
        assert self._writer is not None
        self._writer.close()

    async def ping(self) -> float:
        """Return the round-trip time of `SELECT 1` in seconds; raises on failure."""
        started = time.perf_counter()
        if self._thread is not None:
            await self.run(_select_one)
        else:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return time.perf_counter() - started

    async def close(self) -> None:
        """Wait for transactions under way, then close every connection."""
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))
        if self._thread is not None:
            assert self._writer is not None
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_writer)
            self._thread.shutdown(wait=True)
        await self.engine.dispose()


def _select_one(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
