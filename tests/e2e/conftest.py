"""Fixtures of the suites that run the real service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.support.process import ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT

StartService = Callable[..., Awaitable[ServiceProcess]]


@pytest.fixture
async def sqlite_service(tmp_path: Path, key_prefix: str) -> AsyncIterator[StartService]:
    """Return a function that starts a real `python app.py` on SQLite in this test's folder,
    with the directory text and the ONCALL_ variables given; every one started is stopped
    afterwards. For what is answered before the database is touched (limits, parsing),
    which one backend shows as well as two."""
    started: list[ServiceProcess] = []

    async def start(directory: str, **env: str) -> ServiceProcess:
        path = tmp_path / "oncall.yaml"
        path.write_text(directory)
        process = ServiceProcess(
            {
                "ONCALL_SETTINGS": "/dev/null",
                "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
                "ONCALL_REDIS_HOST": REDIS_HOST,
                "ONCALL_REDIS_PORT": str(REDIS_PORT),
                "ONCALL_REDIS_KEY_PREFIX": key_prefix,
                "ONCALL_DIRECTORY_PATH": str(path),
                **env,
            },
            tmp_path / f"oncall-{len(started)}.log",
        )
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        process.stop()
