"""Fixtures: a real database (SQLite file or PostgreSQL schema), real Redis, a fake clock.

Every test that touches the database runs twice: on a SQLite file in its temporary folder
and on the local PostgreSQL in a schema of its own (`ONCALL_TEST_DATABASES=sqlite` narrows
this while developing). Redis keys are isolated by a per-test prefix and only those keys
are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from oncall.clock import Clock
from oncall.config import Settings, load_settings
from oncall.db import sqlite_writer
from oncall.directory import DirectoryHolder, parse_directory
from oncall.models import alerts, incident_events, incidents, metadata
from oncall.web.app import create_app
from oncall.web.keys import DATABASE
from tests.factories import AM_TOKEN, DIRECTORY_YAML, T0

BACKENDS = os.environ.get("ONCALL_TEST_DATABASES", "sqlite,postgresql").split(",")
POSTGRES_URL = os.environ.get("ONCALL_TEST_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_HOST = os.environ.get("REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))


@contextmanager
def sqlite_connection(path: Path) -> Iterator[Connection]:
    """Yield a connection of the database thread's kind (stdlib `sqlite3`, where the
    prepared statements run on the cursor) on a fresh schema at `path`, inside one
    transaction."""
    engine = sqlite_writer(create_async_engine(f"sqlite+aiosqlite:///{path}"))
    metadata.create_all(engine)
    try:
        with engine.connect() as connection, connection.begin():
            yield connection
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_conn(tmp_path: Path) -> Iterator[Connection]:
    """A `sqlite_connection` on a fresh file."""
    with sqlite_connection(tmp_path / "t.db") as connection:
        yield connection


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"oncall-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_env(tmp_path: Path, backend: str) -> Iterator[dict[str, str]]:
    """Settings variables naming this test's own database."""
    if backend == "postgresql":
        schema = f"t_{uuid.uuid4().hex[:16]}"
        yield {"ONCALL_DATABASE_URL": POSTGRES_URL, "ONCALL_DATABASE_SCHEMA": schema}
        _drop_schema(schema)
    else:
        yield {"ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db"}


def _drop_schema(schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        url = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def make_settings(tmp_path: Path, database_env: dict[str, str],
                  key_prefix: str) -> Callable[..., Settings]:
    """Return a factory of Settings for this test; keyword arguments override ONCALL_ vars."""
    empty = tmp_path / "settings.ini"
    empty.write_text("")

    def build(**overrides: str) -> Settings:
        env = {"ONCALL_SETTINGS": str(empty), "ONCALL_REDIS_HOST": REDIS_HOST,
               "ONCALL_REDIS_PORT": str(REDIS_PORT), "ONCALL_REDIS_KEY_PREFIX": key_prefix,
               "ONCALL_DIRECTORY_PATH": str(tmp_path / "oncall.yaml"),
               **database_env}
        env.update({f"ONCALL_{k.upper()}": v for k, v in overrides.items()})
        return load_settings(env)

    return build


@pytest.fixture
def directory_file(tmp_path: Path) -> Path:
    path = tmp_path / "oncall.yaml"
    path.write_text(DIRECTORY_YAML)
    return path


@pytest.fixture
def make_client(make_settings: Callable[..., Settings], directory_file: Path,
                clock: FakeClock, aiohttp_client: Any) -> Callable[..., Any]:
    """Return a factory of test clients for an app built from this test's settings.

    `aiohttp_client` comes last on purpose: fixtures are torn down in reverse order, so the
    app stops before its database (a PostgreSQL schema) is dropped.

    `directory` replaces the directory file's text; `clock` the fake clock (timer tests
    pass `system_clock`, since APScheduler fires on real time); other keyword arguments
    override settings as ONCALL_<SECTION>_<KEY>.
    """

    async def build(directory: str | None = None, clock: Clock = clock,
                    **overrides: str) -> TestClient[Any, Any]:
        settings = make_settings(**overrides)
        if directory is not None:
            directory_file.write_text(directory)
        parsed = parse_directory(directory_file.read_text(), {}, str(directory_file))
        app = create_app(settings, DirectoryHolder(parsed), clock)
        return await aiohttp_client(app)

    return build


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[TestClient[Any, Any]]:
    yield await make_client()


AM_AUTH = {"Authorization": f"Bearer {AM_TOKEN}"}


async def snapshot(client: TestClient[Any, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table: equal snapshots mean nothing was written."""
    return await client.app[DATABASE].run(read_tables)


def read_tables(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of the incident tables. (A module-level function, like every unit
    of work: the writer process receives it by name.)"""
    return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
            for t in (incidents, alerts, incident_events)}


async def eventually(condition: Callable[[], Awaitable[Any]], timeout: float = 30.0,
                     what: str = "condition") -> Any:
    """Return the first truthy result of `condition()`, polled until `timeout` seconds pass.

    This awaits a state the system reaches on its own (a timer firing); it is not a sleep
    that hopes something has happened.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Any:
    """A real HTTP endpoint for webhook, Slack and Apprise contacts."""
    from tests.receivers import HttpReceiver

    target = HttpReceiver()
    server = await aiohttp_server(target.app())
    target.url = str(server.make_url("/hook"))
    return target


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free port; yields (sink, port)."""
    from aiosmtpd.controller import Controller

    from tests.process import free_port
    from tests.receivers import MailSink

    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()
