"""The database thread on SQLite: units of work queued while it is busy share one commit,
and one that fails is rolled back alone."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from oncall.db.batch import BatchRunner
from oncall.db.engine import Database, make_engine
from oncall.db.migrate import upgrade
from oncall.db.models import meta
from oncall.errors import ConstraintViolated
from oncall.settings import DatabaseSettings


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    engine = make_engine(DatabaseSettings(f"sqlite+aiosqlite:///{tmp_path}/oncall.db", ""))
    await upgrade(engine)
    database = Database(engine)
    yield database
    await database.close()


def write(conn: Connection, key: str, fail: bool = False) -> str:
    conn.execute(insert(meta).values(key=key, value="x"))
    if fail:
        raise ValueError(f"{key} failed after writing")
    return key


def keys(conn: Connection) -> list[str]:
    return sorted(conn.execute(select(meta.c.key).where(meta.c.key.like("k%"))).scalars())


def violate_at_commit(conn: Connection) -> None:
    """Write an alert of no incident with foreign keys checked at commit: the commit fails."""
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    conn.exec_driver_sql(
        "INSERT INTO alerts (incident_id, integration, fingerprint, starts_at, status, labels,"
        " annotations, created_at, updated_at) VALUES (424242, 'x', 'f', '2026-01-01',"
        " 'firing', '{}', '{}', '2026-01-01', '2026-01-01')"
    )


async def test_a_failing_unit_in_a_group_commit_is_rolled_back_alone(db: Database) -> None:
    started, release = threading.Event(), threading.Event()
    sizes: list[int] = []
    assert db._group is not None
    writer = db._group.runner
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
        "k0",
        "k1",
        "k2",
        "ValueError",
        "k4",
        "k5",
    ]
    assert await db.run(keys) == ["k0", "k1", "k2", "k4", "k5"]
    assert sizes[:2] == [1, 6]  # the holder alone, then the six queued behind it together


async def test_a_failed_commit_fails_its_batch_and_the_next_one_commits(db: Database) -> None:
    # SQLite keeps the transaction open when COMMIT fails (here a deferred foreign key);
    # the database thread must not be left unable to begin another, for good.
    outcomes = await asyncio.gather(
        db.run(write, "k1"), db.run(violate_at_commit), return_exceptions=True
    )
    assert all(isinstance(o, ConstraintViolated) for o in outcomes) or (
        outcomes[0] == "k1" and isinstance(outcomes[1], ConstraintViolated)
    )
    assert await db.run(write, "k2") == "k2"
    assert "k2" in await db.run(keys)


def _pragmas(conn: Connection) -> dict[str, Any]:
    names = ("journal_mode", "synchronous", "foreign_keys", "temp_store")
    return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}


async def test_the_database_threads_connection_is_tuned(db: Database) -> None:
    """WAL with synchronous=NORMAL, foreign keys, and savepoint journals kept in memory:
    each unit of a group commit runs in a savepoint, and SQLite journals every page it
    changes there; on disk (past 64 KiB) that was more write calls than the WAL's own."""
    assert await db.run(_pragmas) == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "temp_store": 2,
    }
