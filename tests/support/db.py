"""The test databases: a SQLite file per test, or a PostgreSQL schema of its own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from oncall.db.engine import sqlite_engine, sqlite_url
from oncall.db.models import alerts, incident_events, incidents, metadata
from oncall.web.keys import RUNTIME

BACKENDS = os.environ.get("ONCALL_TEST_DATABASES", "sqlite,postgresql").split(",")
POSTGRES_URL = os.environ.get(
    "ONCALL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def sqlite_connection(path: Path) -> Iterator[Connection]:
    """Yield a connection of the database thread's kind (stdlib `sqlite3`, where the
    prepared statements run on the cursor) on a fresh schema at `path`, inside one
    transaction."""
    engine = sqlite_engine(sqlite_url(create_async_engine(f"sqlite+aiosqlite:///{path}")))
    metadata.create_all(engine)
    try:
        with engine.connect() as connection, connection.begin():
            yield connection
    finally:
        engine.dispose()


def drop_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema with everything in it."""
    import asyncpg

    async def drop() -> None:
        url = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def read_tables(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of the incident tables."""
    return {
        t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
        for t in (incidents, alerts, incident_events)
    }


async def snapshot(client: TestClient[Any, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every incident table: equal snapshots mean nothing was written."""
    return await client.app[RUNTIME].db.run(read_tables)


def count_rows(conn: Connection) -> dict[str, int]:
    """Return the number of rows in each incident table."""
    return {
        table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (incidents, alerts, incident_events)
    }
