"""Every page goes out through one aiohttp session (oncall.notify.http), against real
sockets: an aiohttp receiver, and scripted servers for answers aiohttp would never send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest

from oncall.clock import system_clock
from oncall.notify import http
from oncall.notify.channels import DeliveryError
from oncall.notify.http import HttpPoster
from tests.support.receivers import HttpReceiver


class Scripted:
    """A TCP server that reads each request whole and answers with the next of `answers`
    (raw bytes; None: close without answering), counting the connections it accepted."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


Start = Callable[[list[bytes | None]], Awaitable[tuple[Scripted, str]]]


@pytest.fixture
async def scripted() -> AsyncIterator[Start]:
    servers: list[Scripted] = []

    async def start(answers: list[bytes | None]) -> tuple[Scripted, str]:
        server = Scripted(answers)
        servers.append(server)
        return server, await server.start()

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def poster() -> AsyncIterator[HttpPoster]:
    sender = HttpPoster(system_clock)
    yield sender
    await sender.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_posts_the_body_and_headers_and_keeps_the_connection(aiohttp_server, poster) -> None:
    receiver = HttpReceiver()
    app = receiver.app()
    peers = []

    async def note_peer(request, _response) -> None:
        peers.append(request.transport.get_extra_info("peername"))

    app.on_response_prepare.append(note_peer)
    server = await aiohttp_server(app)
    for n in range(3):
        await poster.post(
            str(server.make_url(f"/hook/{n}?q=1")),
            b'{"n":%d}' % n,
            {"X-Oncall-Delivery": str(n), "Content-Type": "application/json"},
        )
    assert [r.path for r in receiver.requests] == ["/hook/0", "/hook/1", "/hook/2"]
    assert [r.body for r in receiver.requests] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    first = receiver.requests[0].headers
    assert first["X-Oncall-Delivery"] == "0" and first["User-Agent"] == "oncall/0.1"
    assert first["Host"] == f"{server.host}:{server.port}"
    assert len(peers) == 3 and len(set(peers)) == 1  # one kept-alive connection for all


async def test_answers_framed_every_way_are_read_and_the_connection_reused(
    scripted, poster
) -> None:
    chunked = (
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
        b"4;ext=1\r\nbusy\r\n6\r\n again\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    empty = b"HTTP/1.1 204 No Content\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    server, url = await scripted([chunked, empty, interim, OK])
    with pytest.raises(DeliveryError) as busy:
        await poster.post(url, b"body", {"A": "b"})
    for _ in range(3):
        await poster.post(url, b"body", {"A": "b"})
    assert busy.value.message == "HTTP 503: busy again" and not busy.value.permanent
    assert busy.value.retry_after == timedelta(seconds=7)
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nA: b\r\n" in server.requests[0] and server.requests[0].endswith(b"\r\n\r\nbody")


async def test_a_body_ended_by_closing_and_connection_close_are_not_reused(
    scripted, poster
) -> None:
    until_close = b"HTTP/1.1 500 Oops\r\n\r\nsomething broke"
    server, url = await scripted([until_close])
    with pytest.raises(DeliveryError) as failed:
        await poster.post(url, b"x", {})
    assert failed.value.message == "HTTP 500: something broke" and not failed.value.permanent
    server.answers = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", OK]
    await poster.post(url, b"x", {})
    await poster.post(url, b"x", {})
    assert server.connections == 3


async def test_a_kept_connection_the_receiver_closed_fails_retryably_then_is_replaced(
    scripted, poster
) -> None:
    # The receiver takes the second request on the kept connection and closes it without
    # answering (an idle timeout racing the request): a retryable failure, and the next
    # attempt goes out on a new connection with the same idempotency key.
    server, url = await scripted([OK, None, OK])
    await poster.post(url, b"1", {"X-Oncall-Delivery": "1"})
    with pytest.raises(DeliveryError, match="connection failed") as failure:
        await poster.post(url, b"2", {"X-Oncall-Delivery": "2"})
    assert not failure.value.permanent
    await poster.post(url, b"2", {"X-Oncall-Delivery": "2"})
    assert server.connections == 2
    assert [r.rpartition(b"\r\n\r\n")[2] for r in server.requests] == [b"1", b"2", b"2"]


async def test_a_new_connection_closed_without_an_answer_fails(scripted, poster) -> None:
    _, url = await scripted([None])
    with pytest.raises(DeliveryError, match="connection failed") as failure:
        await poster.post(url, b"x", {})
    assert not failure.value.permanent


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200\r\n\r\n",  # not HTTP/1.x
        b"HTTP/1.1 2xx OK\r\n\r\n",  # no status code
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",  # a header line without a name
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",  # an impossible length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a bad chunk size
    ],
)
async def test_an_answer_it_cannot_read_is_a_retryable_failure(scripted, poster, answer) -> None:
    server, url = await scripted([answer])
    with pytest.raises(DeliveryError, match="connection failed") as failure:
        await poster.post(url, b"x", {"X-Oncall-Delivery": "9"})
    assert not failure.value.permanent
    assert len(server.requests) == 1 and b"X-Oncall-Delivery: 9" in server.requests[0]


async def test_no_answer_in_time_is_a_retryable_failure() -> None:
    hanging = asyncio.Event()

    async def never(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await hanging.wait()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = HttpPoster(system_clock, timeout=0.2)
    try:
        with pytest.raises(DeliveryError, match="no answer within") as failure:
            await poster.post(f"http://127.0.0.1:{port}/", b"x", {})
    finally:
        hanging.set()
        await poster.close()
        server.close()
        await server.wait_closed()
    assert not failure.value.permanent


async def test_statuses_become_outcomes_with_retry_after(aiohttp_server) -> None:
    receiver = HttpReceiver(statuses=[503, 404, 302], reply_headers={"Retry-After": "30"})
    server = await aiohttp_server(receiver.app())
    poster = HttpPoster(system_clock)
    try:
        with pytest.raises(DeliveryError) as busy:
            await poster.post(str(server.make_url("/")), b"x", {})
        with pytest.raises(DeliveryError) as gone:
            await poster.post(str(server.make_url("/")), b"x", {})
        with pytest.raises(DeliveryError) as moved:  # a redirect is not followed
            await poster.post(str(server.make_url("/")), b"x", {})
        refused_url = str(server.make_url("/"))
    finally:
        await poster.close()
    assert not busy.value.permanent and busy.value.retry_after == timedelta(seconds=30)
    assert busy.value.message == "HTTP 503: nope"
    assert gone.value.permanent and gone.value.message == "HTTP 404: nope"
    assert moved.value.permanent and len(receiver.requests) == 3
    await server.close()
    poster = HttpPoster(system_clock)
    try:
        with pytest.raises(DeliveryError, match="connection failed: ClientConnectorError"):
            await poster.post(refused_url, b"x", {})
    finally:
        await poster.close()


async def test_a_long_answer_is_read_only_as_far_as_a_report_needs(scripted, poster) -> None:
    body = b"x" * (http.MAX_ANSWER * 4)
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    _, url = await scripted([answer])
    with pytest.raises(DeliveryError) as failed:
        await poster.post(url, b"x", {})
    assert failed.value.message == "HTTP 500: " + "x" * 200


async def test_requests_to_one_receiver_share_a_bounded_set_of_connections(
    scripted, monkeypatch
) -> None:
    monkeypatch.setattr(http, "MAX_CONNECTIONS_PER_HOST", 2)
    server, url = await scripted([OK] * 6)
    poster = HttpPoster(system_clock)
    try:
        await asyncio.gather(*(poster.post(url, b"x", {}) for _ in range(6)))
    finally:
        await poster.close()
    assert server.connections == 2  # the other four waited for one of the two


async def test_a_header_with_a_line_break_is_never_sent(scripted, poster) -> None:
    server, url = await scripted([OK])
    with pytest.raises(ValueError, match="header"):
        await poster.post(url, b"x", {"X-Oncall-Signature": "t=1\r\nX-Injected: 1"})
    assert server.requests == []


async def test_a_header_beyond_latin_1_is_sent_as_utf_8(scripted, poster) -> None:
    server, url = await scripted([OK])
    await poster.post(url, b"x", {"X-Oncall-Signature": "\u0142ukasz"})
    assert "X-Oncall-Signature: \u0142ukasz".encode() in server.requests[0]
