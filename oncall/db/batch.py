"""Group commit on SQLite: units of work queued while the database thread is busy run
together, one transaction and one commit for the batch, each unit in a savepoint of its
own so that one failing is rolled back alone. Committing once for a batch is what lets
the embedded default keep up under load (BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from oncall.db.fastpath import savepoint

log = logging.getLogger(__name__)
MAX_BATCH = 32  # units of work per group commit
Unit = tuple[Callable[..., Any], tuple[Any, ...]]
Outcome = tuple[bool, Any]  # (succeeded, result or error)


class BatchRunner:
    """Runs batches of units of work on one SQLite connection, kept open, one at a time
    (in the database thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def run_batch(self, units: list[Unit]) -> list[Outcome]:
        """Run units of work; return (succeeded, result or error) of each. Raises when the
        commit itself fails (every unit then failed).

        One unit is one transaction. Several share one transaction and one commit, each in
        a savepoint of its own.
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
            outcomes: list[Outcome] = []
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
        back): every later BEGIN on it would fail, and the database thread with it."""
        if conn.invalidated:
            return
        driver = conn.connection.driver_connection
        if driver is not None and getattr(driver, "in_transaction", False):
            log.error("a failed commit left its transaction open; reconnecting")
            conn.invalidate()  # closing the connection rolls the transaction back

    def _connection(self) -> Connection:
        # Kept open: checking a connection out of a pool and resetting it for every
        # transaction costs more than a small transaction's own work.
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


class GroupCommit:
    """The queue in front of the database thread: `submit` hands a unit of work over and
    returns its future; units queued while a batch runs go in the next batch."""

    def __init__(self, runner: BatchRunner) -> None:
        self.runner = runner
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="oncall-db")
        self._queue: list[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = []
        self._busy = False  # a batch is in the thread
        self._handover_pending = False
        self._in_flight: set[asyncio.Future[None]] = set()

    def submit(self, work: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue `work(connection, *args)`; return the future of its result."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((work, args, future))
        if not self._handover_pending:
            # Once per loop iteration: what the iteration queued goes in one batch.
            self._handover_pending = True
            loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        self._handover_pending = False
        self._next_batch()

    def _next_batch(self) -> None:
        if self._busy or not self._queue:
            return
        loop = asyncio.get_running_loop()
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        self._busy = True
        settled = loop.create_future()
        self._in_flight.add(settled)
        finished = functools.partial(self._finished, batch, settled)

        def done(outcome: Any) -> None:  # called in the database thread
            loop.call_soon_threadsafe(finished, outcome)

        self._thread.submit(self._run, [(work, args) for work, args, _ in batch], done)

    def _run(self, units: list[Unit], done: Callable[[Any], None]) -> None:
        """In the database thread: run a batch and pass its outcomes, or the error that
        failed it whole, to `done`."""
        try:
            outcome: Any = self.runner.run_batch(units)
        except BaseException as error:  # every unit fails with it; none is left waiting
            outcome = error
        done(outcome)

    def _finished(
        self,
        batch: list[tuple[Any, Any, asyncio.Future[Any]]],
        settled: asyncio.Future[None],
        outcome: Any,
    ) -> None:
        """On the loop: settle each unit of an answered batch, then start the next."""
        self._in_flight.discard(settled)
        settled.set_result(None)
        self._busy = False
        outcomes = (
            [(False, outcome)] * len(batch) if isinstance(outcome, BaseException) else outcome
        )
        for (_, _, waiter), (ok, value) in zip(batch, outcomes, strict=True):
            if waiter.done():
                continue
            if ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)
        self._next_batch()

    async def close(self) -> None:
        """Wait for the batches under way, then close the connection and the thread."""
        while self._in_flight or self._queue:
            if self._in_flight:
                await asyncio.wait(list(self._in_flight))
            else:
                self._next_batch()
        await asyncio.get_running_loop().run_in_executor(self._thread, self.runner.close)
        self._thread.shutdown(wait=True)
