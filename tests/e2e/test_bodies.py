"""Bounded before authenticated, against a real `python app.py` over real sockets: a body
over its route's cap is refused from Content-Length before it is sent, a chunked one is cut
off without the process buffering it, and a body trickled in gets 408 once
`[server] body_timeout` passes while the service keeps answering.

These run on SQLite only: every limit here acts before the database is touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from oncall.ingest.events_v2 import MAX_BODY
from oncall.web.bodies import SMALL_BODY
from tests.e2e.conftest import StartService
from tests.support.factories import ALICE_TOKEN, AM_TOKEN
from tests.support.process import ServiceProcess
from tests.web.test_bad_params import HB_TOKEN, directory

MAX_BODY_BYTES = 1 << 20  # the Alertmanager route's cap in these tests
BIG = 16 << 20  # the default [server] max_body_bytes: what each chunked post sends
CONCURRENT = 40
# How long to wait for an answer that should come at once, or after the 1s body timeout;
# a guard against hanging, not a measurement.
ANSWER_WITHIN = 15.0


@pytest.fixture
async def start_service(sqlite_service: StartService) -> AsyncIterator[StartService]:
    """Return a function that starts the service with a 1s body timeout and the settings
    given (ONCALL_ variables); each one's log is free of tracebacks afterwards."""
    started: list[ServiceProcess] = []

    async def start(**env: str) -> ServiceProcess:
        process = await sqlite_service(directory(), ONCALL_SERVER_BODY_TIMEOUT="1s", **env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        log = process.log_path.read_text()
        assert "Traceback" not in log and "Unhandled exception" not in log, log[-3000:]


def rss(process: ServiceProcess, field: str = "VmRSS") -> int:
    """Return the process's resident memory in bytes (`field` of /proc/PID/status)."""
    assert process.proc is not None
    with open(f"/proc/{process.proc.pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/PID/status")


async def status_line(reader: asyncio.StreamReader) -> int:
    """Return the status of the HTTP answer the reader is at, its headers read."""
    first = await asyncio.wait_for(reader.readline(), ANSWER_WITHIN)
    assert first.startswith(b"HTTP/1.1 "), first
    while (await asyncio.wait_for(reader.readline(), ANSWER_WITHIN)) not in (b"\r\n", b""):
        pass
    return int(first.split()[1])


def headers(path: str, length: int, credential: str | None) -> bytes:
    """Return the head of a POST of `length` bytes of JSON to `path`."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: oncall",
        "Content-Type: application/json",
        f"Content-Length: {length}",
    ]
    if credential is not None:
        lines.append(f"Authorization: Bearer {credential}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("path", "credential", "cap"),
    [
        # the routing key is in the body: the cap is all that stands before it
        ("/v2/enqueue", None, MAX_BODY),
        ("/api/v1/integrations/alertmanager", AM_TOKEN, MAX_BODY_BYTES),
        ("/api/v1/heartbeats/nightly", HB_TOKEN, SMALL_BODY),
        ("/api/v1/schedules/primary/overrides", ALICE_TOKEN, SMALL_BODY),
    ],
)
async def test_a_body_announced_over_the_cap_gets_413_before_it_is_sent(
    start_service, path, credential, cap
):
    service = await start_service(ONCALL_SERVER_MAX_BODY_BYTES=str(MAX_BODY_BYTES))
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(headers(path, cap + 1, credential))  # and not one byte of the body
        await writer.drain()
        assert await status_line(reader) == 413
    finally:
        writer.close()


async def chunked_post(session: aiohttp.ClientSession, url: str) -> int | None:
    """POST BIG bytes in chunks (no Content-Length); return the status, or None when the
    server closed the connection before answering."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"routing_key": "'
        chunk = b"x" * (64 * 1024)
        for _ in range(BIG // len(chunk)):
            yield chunk

    try:
        async with session.post(
            url, data=body(), headers={"Content-Type": "application/json"}
        ) as response:
            return response.status
    except aiohttp.ClientError:
        return None


async def test_concurrent_chunked_bodies_are_cut_off_and_memory_stays_bounded(start_service):
    service = await start_service()  # max_body_bytes at its default, BIG
    url = f"{service.url}/v2/enqueue"
    async with aiohttp.ClientSession() as session:
        assert await chunked_post(session, url) == 413  # warms up the route
        before = rss(service)
        statuses = await asyncio.gather(*(chunked_post(session, url) for _ in range(CONCURRENT)))
        peak = rss(service, "VmHWM")
        async with session.get(f"{service.url}/-/healthy") as response:
            assert response.status == 200
    assert statuses.count(413) >= CONCURRENT // 2, statuses  # the rest cut off mid-send
    assert set(statuses) <= {413, None}, statuses
    # Each connection holds at most the cap and a read buffer, not the body it was sent.
    assert peak - before < CONCURRENT * BIG / 8, (before, peak)


async def test_a_trickled_body_gets_408_and_the_service_keeps_answering(start_service):
    service = await start_service()
    tricklers = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(headers("/v2/enqueue", 1000, None) + b"{")
        await writer.drain()
        tricklers.append((reader, writer))
    stop = asyncio.Event()

    async def trickle() -> None:
        # one more byte on every connection at a time, as a slow attacker sends them
        while not stop.is_set():
            for _, writer in tricklers:
                if not writer.is_closing():
                    writer.write(b" ")
            await asyncio.sleep(0.1)

    task = asyncio.create_task(trickle())
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{service.url}/-/healthy") as response,
        ):
            assert response.status == 200  # while every trickled body is still open
        for reader, _ in tricklers:
            assert await status_line(reader) == 408
            # the connection is closed after the answer, though the sender goes on: an end
            # of stream, or a reset when the close finds the sender's bytes unread
            try:
                while await asyncio.wait_for(reader.read(65536), ANSWER_WITHIN):
                    pass
            except ConnectionResetError:
                pass
    finally:
        stop.set()
        await task
        for _, writer in tricklers:
            writer.close()
