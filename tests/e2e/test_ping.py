"""`[monitoring] ping_url` from a real `python app.py` to a real HTTP receiver: a GET every
`ping_interval` while the service is healthy, none while its database is not, again once it
is; a failing switch is logged; the URL's secret path and query never reach the log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from oncall.db.engine import Database, make_engine
from oncall.settings import load_settings
from tests.support.factories import DIRECTORY_YAML
from tests.support.ops import OPS
from tests.support.process import ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

SECRET_PATH = "/ping/0f1e2d3c-secret-uuid"
SECRET_QUERY = "token=hush-hush"


def database_of(env: dict[str, str]) -> Database:
    """The test's own handle on the service's database."""
    return Database(make_engine(load_settings({"ONCALL_SETTINGS": "/dev/null", **env}).database))


class Switch:
    """A dead-man's switch: counts the GETs it is sent, answering each with the next
    scripted status (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.pings: list[tuple[str, str]] = []  # (path and query, User-Agent)

    async def handle(self, request: web.Request) -> web.Response:
        self.pings.append((request.path_qs, request.headers.get("User-Agent", "")))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200, text="OK")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app


async def pings_counted(
    session: aiohttp.ClientSession, service: ServiceProcess
) -> dict[str, float]:
    """Return the service's `oncall_pings_total` by outcome."""
    async with session.get(f"{service.url}/metrics", headers=OPS) as response:
        text = await response.text()
    counts = {"sent": 0.0, "failed": 0.0, "withheld": 0.0}
    for line in text.splitlines():
        if line.startswith("oncall_pings_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = float(line.split()[-1])
    return counts


async def test_it_pings_while_healthy_and_stops_while_its_database_is_not(
    tmp_path: Path, database_env: dict[str, str], key_prefix: str, aiohttp_server: Any
) -> None:
    switch = Switch(statuses=[503])  # the first ping fails: logged, and pinging goes on
    server = await aiohttp_server(switch.app())
    directory = tmp_path / "oncall.yaml"
    directory.write_text(DIRECTORY_YAML)
    service = ServiceProcess(
        {
            **database_env,
            "ONCALL_SETTINGS": "/dev/null",
            "ONCALL_REDIS_HOST": REDIS_HOST,
            "ONCALL_REDIS_PORT": str(REDIS_PORT),
            "ONCALL_REDIS_KEY_PREFIX": key_prefix,
            "ONCALL_DIRECTORY_PATH": str(directory),
            "ONCALL_MONITORING_PING_URL": str(server.make_url(f"{SECRET_PATH}?{SECRET_QUERY}")),
            "ONCALL_MONITORING_PING_INTERVAL": "1s",
        },
        tmp_path / "oncall.log",
    )
    await service.start()
    db = database_of(database_env)
    try:
        async with aiohttp.ClientSession() as session:

            async def pinged(count: int) -> bool:
                return len(switch.pings) >= count

            await eventually(lambda: pinged(3), what="three pings")
            assert set(switch.pings) == {(f"{SECRET_PATH}?{SECRET_QUERY}", "oncall/0.1")}
            assert (await pings_counted(session, service))["failed"] == 1

            # The database loses a table: /health fails, and so the pings stop.
            await db.run(lambda c: c.exec_driver_sql("ALTER TABLE audit_log RENAME TO away"))

            async def withheld(count: int) -> int | None:
                counts = await pings_counted(session, service)
                return len(switch.pings) if counts["withheld"] >= count else None

            # Each tick awaits its ping before the next one decides: after a withheld tick
            # no ping is under way, and none may come while the database stays broken.
            before = await eventually(lambda: withheld(1), what="a ping withheld")
            assert await eventually(lambda: withheld(3), what="three ticks withheld") == before
            async with session.get(f"{service.url}/health", headers=OPS) as response:
                assert response.status == 503
                assert (await response.json())["failing"] == ["database"]

            await db.run(lambda c: c.exec_driver_sql("ALTER TABLE away RENAME TO audit_log"))
            await eventually(lambda: pinged(before + 1), what="pings to resume")
    finally:
        await db.close()
        assert service.stop() == 0
    log = service.log_path.read_text()
    host = f"{server.host}:{server.port}"
    assert f'ping failed host="{host}" error="HTTP 503: OK"' in log
    assert f'pings withheld: the service is not healthy host="{host}"' in log
    assert log.count("pings withheld") == 1  # said when it starts, not every tick
    assert "pings resumed" in log
    assert "secret-uuid" not in log and "hush" not in log


async def test_a_switch_that_does_not_answer_never_holds_the_ticks_up(
    tmp_path: Path, key_prefix: str, aiohttp_server: Any
) -> None:
    answered = asyncio.Event()
    hanging: list[str] = []

    async def hang(request: web.Request) -> web.Response:
        hanging.append(request.path_qs)
        await answered.wait()  # never set: each ping times out
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hang)
    server = await aiohttp_server(app)
    directory = tmp_path / "oncall.yaml"
    directory.write_text(DIRECTORY_YAML)
    service = ServiceProcess(
        {
            "ONCALL_SETTINGS": "/dev/null",
            "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
            "ONCALL_REDIS_HOST": REDIS_HOST,
            "ONCALL_REDIS_PORT": str(REDIS_PORT),
            "ONCALL_REDIS_KEY_PREFIX": key_prefix,
            "ONCALL_DIRECTORY_PATH": str(directory),
            "ONCALL_MONITORING_PING_URL": str(server.make_url("/hang/secret-uuid")),
            "ONCALL_MONITORING_PING_INTERVAL": "1s",
        },
        tmp_path / "oncall.log",
    )
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:

            async def failed_twice() -> bool:
                return (await pings_counted(session, service))["failed"] >= 2

            # Each ping gives up after half the interval, and the next tick still comes.
            await eventually(failed_twice, what="two pings to time out")
            async with session.get(f"{service.url}/-/healthy") as response:
                assert response.status == 200
    finally:
        assert service.stop() == 0
    assert len(hanging) >= 2
    log = service.log_path.read_text()
    assert 'error="no answer within 0.5s"' in log and "secret-uuid" not in log
