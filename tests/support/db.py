"""The test databases: a SQLite file per test, or a PostgreSQL schema of its own."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from oncall.db.engine import sqlite_engine, sqlite_url
from oncall.db.migrate import upgrade
from oncall.db.models import alerts, incident_events, incidents, metadata
from oncall.web.keys import RUNTIME

BACKENDS = os.environ.get("ONCALL_TEST_DATABASES", "sqlite,postgresql").split(",")
POSTGRES_URL = os.environ.get(
    "ONCALL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
_LIBPQ_URL = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")  # asyncpg, pg_dump


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


def _execute(sql: str) -> None:
    """Run `sql` (one or more statements) on the test PostgreSQL database."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(_LIBPQ_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def drop_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema with everything in it."""
    _execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class _Migrated:
    """A database at the newest migration, made once per test process (by the service's
    own `upgrade`) and copied into each test's database, so that a test pays for a copy
    rather than for every migration. Tests of the migrations themselves start from empty
    databases of their own."""

    def __init__(self) -> None:
        self._sqlite: Path | None = None
        self._schema_sql: str | None = None
        self._name = f"t_migrated_{uuid.uuid4().hex[:16]}"

    def sqlite(self, path: Path) -> None:
        """Write a SQLite database at the newest migration to `path`."""
        if self._sqlite is None:
            folder = Path(tempfile.mkdtemp(prefix="oncall-migrated-"))
            atexit.register(shutil.rmtree, folder, True)
            template = folder / "oncall.db"
            asyncio.run(_upgrade(f"sqlite+aiosqlite:///{template}", ""))
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)

    def postgresql(self, schema: str) -> None:
        """Create `schema` at the newest migration, as `pg_dump` printed the one migrated."""
        if self._schema_sql is None:
            asyncio.run(_upgrade(POSTGRES_URL, self._name))
            try:
                dump = subprocess.run(
                    [
                        "pg_dump",
                        f"--schema={self._name}",
                        "--inserts",
                        "--no-owner",
                        "--no-privileges",
                        _LIBPQ_URL,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            finally:
                drop_schema(self._name)
            # Lines starting with a backslash are psql's (`\restrict`), not SQL.
            lines = [line for line in dump.splitlines() if not line.startswith("\\")]
            self._schema_sql = "\n".join(lines)
        _execute(self._schema_sql.replace(self._name, schema))


async def _upgrade(url: str, schema: str) -> None:
    engine = create_async_engine(url)
    try:
        await upgrade(engine, schema)
    finally:
        await engine.dispose()


MIGRATED = _Migrated()


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
