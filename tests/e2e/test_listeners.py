"""`python app.py`'s listeners on real sockets: `/metrics` alone, without a token, on
`[server] metrics_listen`; and at most `[server] max_connections_per_address` connections
from one client address, the others closed at once while other addresses are served."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.factories import DIRECTORY_YAML
from tests.support.process import ServiceProcess, free_port
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

LIMIT = 5
OTHER_ADDRESS = "127.0.0.2"  # Linux routes all of 127/8 to the loopback interface
# Only so that a connection the server keeps open fails the test instead of hanging it.
GIVE_UP = 10.0


@pytest.fixture
async def start(tmp_path: Any, database_env: dict[str, str], key_prefix: str) -> AsyncIterator[Any]:
    """Return a function starting `python app.py` with extra settings variables."""
    started: list[ServiceProcess] = []
    directory = tmp_path / "oncall.yaml"
    directory.write_text(DIRECTORY_YAML)

    async def start_service(**env: str) -> ServiceProcess:
        service = ServiceProcess(
            {
                **database_env,
                "ONCALL_SETTINGS": "/dev/null",
                "ONCALL_REDIS_HOST": REDIS_HOST,
                "ONCALL_REDIS_PORT": str(REDIS_PORT),
                "ONCALL_REDIS_KEY_PREFIX": key_prefix,
                "ONCALL_DIRECTORY_PATH": str(directory),
                **env,
            },
            tmp_path / "oncall.log",
        )
        started.append(service)
        await service.start()
        return service

    yield start_service
    for service in started:
        assert service.stop() == 0


async def test_metrics_listen_serves_only_metrics_and_without_a_token(start):
    port = free_port()
    service = await start(
        ONCALL_SERVER_METRICS_TOKEN="", ONCALL_SERVER_METRICS_LISTEN=f"127.0.0.1:{port}"
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert "oncall_alerts_received" in await response.text()
            assert response.headers["Server"] == "oncall"
        for path in ("/health", "/-/reload", "/api/v1/incidents"):
            async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                assert response.status in (404, 405), path
        # The main port refuses it: no token is set.
        async with session.get(f"{service.url}/metrics") as response:
            assert response.status == 403
            assert "oncall_" not in await response.text()


class Held:
    """A connection from `local` that got one answer and keeps its next request open."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()


async def request_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Return the status line of GET /-/healthy on an open connection (b"" when the server
    closed it instead)."""
    writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: oncall\r\n\r\n")
    try:
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), GIVE_UP)
    except ConnectionError:
        return b""
    if line:
        await reader.readuntil(b"OK\n")  # the rest of the answer
    return line


async def hold(port: int, local: str = "127.0.0.1") -> Held | None:
    """Return a connection the server answered once and that then sends half a request
    (a slow client's headers), or None when the server closed it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    if not (await request_on(reader, writer)).startswith(b"HTTP/1.1 200"):
        writer.close()
        return None
    writer.write(b"GET /-/heal")
    await writer.drain()
    return Held(reader, writer)


async def closed_at_once(port: int) -> bool:
    """Return whether a new connection from 127.0.0.1 is closed without an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: oncall\r\n\r\n")
        try:
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), GIVE_UP)
        except ConnectionError:
            data = b""
        return data == b""
    finally:
        writer.close()


async def healthy_from(url: str, local: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"{url}/-/healthy") as response,
    ):
        return response.status


async def test_one_address_holds_at_most_its_connections_and_others_are_served(start):
    service = await start(ONCALL_SERVER_MAX_CONNECTIONS_PER_ADDRESS=str(LIMIT))
    held: list[Held] = []
    try:
        while len(held) < LIMIT:
            # The readiness probe's own connection may not be gone yet: a refusal while it
            # still counts is retried.
            connection = await eventually(lambda: hold(service.port), what="a connection held")
            held.append(connection)
        # The address holds its limit: every further connection is closed unanswered.
        for _ in range(3):
            assert await closed_at_once(service.port)
        # Another address is served meanwhile.
        assert await healthy_from(service.url, OTHER_ADDRESS) == 200
        # The held connections stay open and are still answered.
        assert held[0].writer.is_closing() is False
        held.pop().close()
        # Once one is closed, the address may connect again.

        async def served() -> bool:
            try:
                return await healthy_from(service.url, "127.0.0.1") == 200
            except aiohttp.ClientConnectionError:
                return False

        assert await eventually(served, what="a connection from 127.0.0.1 served")
    finally:
        for connection in held:
            connection.close()


FILE_LIMIT = 128  # small enough for a few hundred connections to exhaust it


def small_file_limit() -> None:
    """Run in the child before it starts: a hard limit of open files it cannot raise."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


def open_files_limit(pid: int) -> tuple[int, int]:
    """Return (soft, hard) of process `pid`'s open files limit, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open files line")


def lowered_soft_limit() -> None:
    """Run in the child before it starts: a soft limit of open files below the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))


async def started(service: ServiceProcess, preexec: Any) -> None:
    """Start `service` with `preexec` run in the child; return once /-/healthy answers."""
    with open(service.log_path, "ab") as log:
        service.proc = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=service.root,
            env=service.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )

    async def up() -> bool:
        assert service.proc is not None and service.proc.poll() is None, (
            service.log_path.read_text()[-3000:]
        )
        try:
            return await healthy_from(service.url, OTHER_ADDRESS) == 200
        except aiohttp.ClientConnectionError:
            return False

    await eventually(up, what="the service up")


def service_env(tmp_path: Any, database_env: dict[str, str], key_prefix: str) -> dict[str, str]:
    directory = tmp_path / "oncall.yaml"
    directory.write_text(DIRECTORY_YAML)
    return {
        **database_env,
        "ONCALL_SETTINGS": "/dev/null",
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(directory),
    }


async def test_the_soft_open_files_limit_is_raised_to_the_hard_one(
    tmp_path, database_env, key_prefix
):
    service = ServiceProcess(service_env(tmp_path, database_env, key_prefix), tmp_path / "log")
    try:
        await started(service, lowered_soft_limit)
        assert service.proc is not None
        soft, hard = open_files_limit(service.proc.pid)
        assert soft == hard
    finally:
        assert service.stop() == 0


async def test_running_out_of_files_is_logged_once_not_per_accept(
    tmp_path, database_env, key_prefix
):
    # No per-address limit: connections from many addresses would do the same.
    env = {
        **service_env(tmp_path, database_env, key_prefix),
        "ONCALL_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0",
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    clients: list[socket.socket] = []
    try:
        await started(service, small_file_limit)

        def out_of_files() -> list[str]:
            return [
                line
                for line in service.log_path.read_text().splitlines()
                if "out of system resource" in line or "cannot accept connections" in line
            ]

        async def exhausted() -> list[str]:
            # One more connection per poll, until the service says it is out of files.
            if not out_of_files() and len(clients) < 2 * FILE_LIMIT:
                sock = socket.create_connection(("127.0.0.1", service.port), timeout=GIVE_UP)
                sock.send(b"G")
                clients.append(sock)
            return out_of_files()

        await eventually(exhausted, what="the service out of file descriptors")
        for sock in clients:
            sock.close()
        clients.clear()

        async def served() -> bool:
            try:
                return await healthy_from(service.url, OTHER_ADDRESS) == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(served, what="the service serving again")
        assert len(out_of_files()) == 1
    finally:
        for sock in clients:
            sock.close()
        assert service.stop() == 0
