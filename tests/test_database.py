"""The database thread on SQLite: units of work queued while it is busy share one commit,
and one that fails is rolled back alone."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from oncall import migrate
from oncall.config import DatabaseSettings
from oncall.db import BatchRunner, Database, make_engine
from tests.writer_units import keys, violate_at_commit, write


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    engine = make_engine(DatabaseSettings(f"sqlite+aiosqlite:///{tmp_path}/oncall.db", ""))
    await migrate.upgrade(engine)
    database = Database(engine)  # the thread: units below are local functions
    yield database
    await database.close()


async def test_a_failing_unit_in_a_group_commit_is_rolled_back_alone(db: Database) -> None:
    started, release = threading.Event(), threading.Event()
    sizes: list[int] = []
    writer = db._writer
    assert isinstance(writer, BatchRunner)
    real_batch = writer.run_batch

    def batch(units: list[Any]) -> Any:
        sizes.append(len(units))
        return real_batch(units)

    writer.run_batch = batch  # type: ignore[method-assign]

    def hold(_conn: Connection) -> None:
        started.set()
        release.wait(10)

    holding = asyncio.ensure_future(db.run(hold))
    await asyncio.to_thread(started.wait, 10)
    # Queued while the thread is busy: these run as one batch, one commit.
    units = [asyncio.ensure_future(db.run(write, f"k{i}", i == 3)) for i in range(6)]
    await asyncio.sleep(0)  # let every unit reach the queue before the thread frees up
    release.set()
    await holding
    outcomes = await asyncio.gather(*units, return_exceptions=True)
    assert [o if isinstance(o, str) else type(o).__name__ for o in outcomes] == [
        "k0", "k1", "k2", "ValueError", "k4", "k5"]
    assert await db.run(keys) == ["k0", "k1", "k2", "k4", "k5"]
    assert sizes[:2] == [1, 6]  # the holder alone, then the six queued behind it together


async def test_a_failed_commit_fails_its_batch_and_the_next_one_commits(db: Database) -> None:
    # SQLite keeps the transaction open when COMMIT fails (here a deferred foreign key);
    # the writer must not be left unable to begin another, for good.
    outcomes = await asyncio.gather(db.run(write, "k1"), db.run(violate_at_commit),
                                    return_exceptions=True)
    assert all(isinstance(o, IntegrityError) for o in outcomes) or (
        outcomes[0] == "k1" and isinstance(outcomes[1], IntegrityError))
    assert await db.run(write, "k2") == "k2"
    assert "k2" in await db.run(keys)


def _pragmas(conn: Connection) -> dict[str, Any]:
    names = ("journal_mode", "synchronous", "foreign_keys", "temp_store")
    return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}


async def test_the_writer_connection_is_tuned(db: Database) -> None:
    """WAL with synchronous=NORMAL, foreign keys, and savepoint journals kept in memory:
    each unit of a group commit runs in a savepoint, and SQLite journals every page it
    changes there; on disk (past 64 KiB) that was more write calls than the WAL's own."""
    assert await db.run(_pragmas) == {"journal_mode": "wal", "synchronous": 1,
                                      "foreign_keys": 1, "temp_store": 2}
