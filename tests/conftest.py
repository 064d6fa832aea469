"""Fixtures: a real database (SQLite file or PostgreSQL schema), real Redis, a fake clock.

Every test that touches the database runs twice: on a SQLite file in its temporary folder
and on the local PostgreSQL in a schema of its own (`ONCALL_TEST_DATABASES=sqlite` narrows
this while developing). Redis keys are isolated by a per-test prefix and only those keys
are deleted afterwards. Helpers the tests share are in `tests.support`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Connection

from oncall.clock import Clock
from oncall.directory.holder import DirectoryHolder
from oncall.directory.parse import parse_directory
from oncall.settings import Settings, load_settings
from oncall.web.app import create_app
from tests.support.db import (
    BACKENDS,
    MIGRATED,
    POSTGRES_URL,
    drop_schema,
    sqlite_connection,
)
from tests.support.factories import DIRECTORY_YAML, T0
from tests.support.ops import OPS_ENV
from tests.support.redis_server import REDIS_HOST, REDIS_PORT, delete_keys


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


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash web UI passwords in this process with argon2's cheapest parameters: the
    service's own are slow and memory-hungry on purpose, and a test's log-in hashes twice.
    A test marked `argon2_defaults` (one that
    needs hashes to take their time) and every service a test starts as a process hash
    as the service does."""
    if request.node.get_closest_marker("argon2_defaults") is None:
        from argon2 import PasswordHasher

        from oncall.accounts import passwords

        cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        monkeypatch.setattr(passwords, "_hasher", cheap)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"oncall-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_keys(prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_env(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """Settings variables naming this test's own database, already at the newest migration
    (a copy of one migrated once per test process); empty for a test marked
    `empty_database`."""
    migrated = request.node.get_closest_marker("empty_database") is None
    if backend == "postgresql":
        schema = f"t_{uuid.uuid4().hex[:16]}"
        if migrated:
            MIGRATED.postgresql(schema)
        yield {"ONCALL_DATABASE_URL": POSTGRES_URL, "ONCALL_DATABASE_SCHEMA": schema}
        drop_schema(schema)
    else:
        path = tmp_path / "oncall.db"
        if migrated:
            MIGRATED.sqlite(path)
        yield {"ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}


@pytest.fixture
def make_settings(
    tmp_path: Path, database_env: dict[str, str], key_prefix: str
) -> Callable[..., Settings]:
    """Return a factory of Settings for this test; keyword arguments override ONCALL_ vars."""
    empty = tmp_path / "settings.ini"
    empty.write_text("")

    def build(**overrides: str) -> Settings:
        env = {
            "ONCALL_SETTINGS": str(empty),
            "ONCALL_REDIS_HOST": REDIS_HOST,
            "ONCALL_REDIS_PORT": str(REDIS_PORT),
            "ONCALL_REDIS_KEY_PREFIX": key_prefix,
            "ONCALL_DIRECTORY_PATH": str(tmp_path / "oncall.yaml"),
            # Each test's own files, never the checkout's data/ (a developer's init there)
            "ONCALL_DIRECTORY_ENV_FILE": str(tmp_path / "oncall.env"),
            "ONCALL_SECURITY_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
            **OPS_ENV,
            **database_env,
        }
        env.update({f"ONCALL_{k.upper()}": v for k, v in overrides.items()})
        return load_settings(env)

    return build


@pytest.fixture
def directory_file(tmp_path: Path) -> Path:
    path = tmp_path / "oncall.yaml"
    path.write_text(DIRECTORY_YAML)
    return path


@pytest.fixture
def make_client(
    make_settings: Callable[..., Settings],
    directory_file: Path,
    clock: FakeClock,
    aiohttp_client: Any,
) -> Callable[..., Any]:
    """Return a factory of test clients for an app built from this test's settings.

    `aiohttp_client` comes last on purpose: fixtures are torn down in reverse order, so the
    app stops before its database (a PostgreSQL schema) is dropped.

    `directory` replaces the directory file's text; `clock` the fake clock (tests of timers
    firing pass `system_clock`); other keyword arguments override settings as
    ONCALL_<SECTION>_<KEY>.
    """

    async def build(
        directory: str | None = None, clock: Clock = clock, **overrides: str
    ) -> TestClient[Any, Any]:
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


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Any:
    """A real HTTP endpoint for webhook, Slack and Apprise contacts."""
    from tests.support.receivers import HttpReceiver

    target = HttpReceiver()
    server = await aiohttp_server(target.app())
    target.url = str(server.make_url("/hook"))
    return target


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free port; yields (sink, port)."""
    from aiosmtpd.controller import Controller

    from tests.support.process import free_port
    from tests.support.receivers import MailSink

    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()
