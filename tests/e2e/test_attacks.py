"""What an anonymous caller on the internet could still do to a real `python app.py`, found
by trying: each test here is one such attack, and what the service must do instead.

These run on SQLite only: every attack here is answered before the database matters.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import zlib

import aiohttp
import pytest

from tests.e2e.conftest import StartService
from tests.support.process import ServiceProcess

EV_TOKEN = "ev-attacks-0123456789abcdefghijklmnopqrstuv"
HB_TOKEN = "hb-attacks-0123456789abcdefghijklmnopqrstuv"
ALICE_TOKEN = "alice-attacks-0123456789abcdefghijklmnopqrstuv"
DIRECTORY = f"""
integrations:
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
  - {{name: nightly, type: heartbeat, token: "{HB_TOKEN}", interval: 1h, grace: 1h}}
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{{type: email, to: a@example.com}}]}}
policies:
  - name: default
    levels:
      - {{notify: ["user:alice"], escalate_after: 1h}}
routes:
  - {{policy: default}}
"""
# A guard against hanging, not a measurement.
ANSWER_WITHIN = 30.0


@pytest.fixture
def start_service(sqlite_service: StartService) -> StartService:
    """Return a function that starts the service with the settings given (ONCALL_
    variables) on this suite's directory."""
    return functools.partial(sqlite_service, DIRECTORY)


def cpu_seconds(process: ServiceProcess) -> float:
    """Return the CPU time (user and system) the process has used so far."""
    assert process.proc is not None
    with open(f"/proc/{process.proc.pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gzipped(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    return compressor.compress(data) + compressor.flush()


async def post_status(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> int | None:
    """Return the status of a POST, or None when the server closed the connection before
    the whole body was sent (it answered early and stopped reading)."""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status
    except aiohttp.ClientOSError:
        return None


# A gzip body of about 2 MB that inflates to 2 GB of spaces (valid JSON whitespace).
INFLATED = 2 << 30
SEGMENT = 8 << 20


def gzip_bomb() -> bytes:
    """Return the bomb, built cheaply: after a full flush the compressor starts afresh, so
    every later segment of spaces compresses to the same bytes. Its checksum is wrong,
    which only the last few bytes would reveal."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    spaces = b" " * SEGMENT
    head = compressor.compress(spaces) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(spaces) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + segment * (INFLATED // SEGMENT - 1) + compressor.flush()


async def test_a_compressed_body_is_refused_not_inflated(start_service):
    """aiohttp inflates `Content-Encoding: gzip` bodies as they arrive, on the event loop
    and before any handler runs, even for a request answered 401 without reading its body:
    a 2 MB gzip of spaces cost the service seconds of CPU during which nothing else was
    answered. No alert source compresses its posts, so an encoded body is refused (415,
    naming Content-Encoding) and never inflated."""
    service = await start_service()
    event = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db1", "severity": "critical"},
    }
    encoded = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    bomb = gzip_bomb()
    timeout = aiohttp.ClientTimeout(total=ANSWER_WITHIN)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        before = cpu_seconds(service)
        # anonymous, to a route that answers 401 before reading; then to one that reads
        for path in ("/api/v1/heartbeats/nightly", "/v2/enqueue"):
            assert await post_status(session, f"{service.url}{path}", bomb, encoded) in (
                401,
                413,
                415,
                None,
            ), path
        async with session.get(f"{service.url}/-/healthy") as response:
            assert response.status == 200
        spent = cpu_seconds(service) - before
        # Inflating 2 GB takes more than a second of CPU; refusing it, next to none. A
        # bound on work done, with a wide margin, not a latency.
        assert spent < 0.5, f"the service spent {spent:.2f} s of CPU on two refused bodies"
        # and an event with the right routing key, compressed, is refused alike
        async with session.post(
            f"{service.url}/v2/enqueue", data=gzipped(json.dumps(event).encode()), headers=encoded
        ) as response:
            assert response.status == 415, await response.text()
            assert (await response.json())["field"] == "Content-Encoding"
        # A heartbeat's ping body is discarded unread: a compressed one still counts, as it
        # did, so a job that compresses its output is not reported missing.
        async with session.post(
            f"{service.url}/api/v1/heartbeats/nightly",
            data=gzipped(b"backup done"),
            headers={"Authorization": f"Bearer {HB_TOKEN}", "Content-Encoding": "gzip"},
        ) as response:
            assert response.status == 200, await response.text()


FEED_SECRET = "feedsecret-0123456789abcdefghijklmnopqrstuv"
# Requests aiohttp cannot parse, each answered 400 before any handler runs; two carry a
# credential on the line that is wrong.
MALFORMED = [
    f"GET /feeds/alice/{FEED_SECRET}/primary.ics\xff HTTP/1.1\r\nHost: oncall\r\n\r\n".encode(
        "latin-1"
    ),
    f"GET /api/v1/incidents HTTP/1.1\r\nHost: oncall\r\n"
    f"Authorization: Bearer {ALICE_TOKEN}\x01\r\n\r\n".encode(),
    b"GET /\xef\xbc\x91 HTTP/1.1\r\nHost: oncall\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: oncall\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"POST /v2/enqueue HTTP/1.1\r\nHost: oncall\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
]
FLOOD = 20  # rounds of MALFORMED


async def answer_of(port: int, request: bytes) -> bytes:
    """Return the first line of the answer to `request`, sent on a connection of its own."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), ANSWER_WITHIN)
    finally:
        writer.close()


async def test_malformed_requests_log_no_credentials_and_no_flood(start_service):
    """aiohttp logged each unparseable request at ERROR with a traceback quoting the bad
    line of the request: a feed URL or a token landed in the log in full, and each
    anonymous request of a few bytes wrote several hundred."""
    service = await start_service()
    for _ in range(FLOOD):
        for request in MALFORMED:
            assert (await answer_of(service.port, request)).split()[1] == b"400"
    # a well-formed request still answers, and its access line follows the ones above
    assert (
        await answer_of(service.port, b"GET /-/healthy HTTP/1.1\r\nHost: oncall\r\n\r\n")
    ).split()[1] == b"200"
    service.stop()
    log = service.log_path.read_text()
    assert FEED_SECRET not in log and ALICE_TOKEN not in log
    assert "Traceback" not in log
    refused = [line for line in log.splitlines() if "aiohttp.server" in line]
    # one line per interval, whatever the number of requests
    assert len(refused) <= 2, refused[:5]
