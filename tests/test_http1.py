"""The plain-http client pages go through (oncall.http1), against real sockets: an aiohttp
receiver, and scripted servers for answers aiohttp would never send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest

from oncall import http1
from oncall.channels import DeliveryError
from oncall.clock import system_clock
from oncall.http import HttpPoster
from tests.receivers import HttpReceiver


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
async def client() -> AsyncIterator[http1.Client]:
    plain = http1.Client()
    yield plain
    plain.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_only_plain_http_urls_it_can_write_are_its_own() -> None:
    assert http1.target("http://example.org:8080/a/b?c=d") == http1.Target(
        "example.org", 8080, "example.org:8080", "/a/b?c=d")
    assert http1.target("http://[::1]/") == http1.Target("::1", 80, "[::1]", "/")
    assert http1.target("http://example.org") == http1.Target("example.org", 80,
                                                               "example.org", "/")
    for url in ("https://example.org/", "http://user:secret@example.org/",
                "http://example.org/a b", "http://example.org/\u00e9", "http://:80/",
                "http://example.org:99999/", "ftp://example.org/"):
        assert http1.target(url) is None, url


async def test_posts_the_body_and_headers_and_keeps_the_connection(aiohttp_server) -> None:
    receiver = HttpReceiver()
    app = receiver.app()
    peers = []

    async def note_peer(request, _response) -> None:
        peers.append(request.transport.get_extra_info("peername"))

    app.on_response_prepare.append(note_peer)
    server = await aiohttp_server(app)
    poster = HttpPoster(system_clock)
    try:
        for n in range(3):
            await poster.post(str(server.make_url(f"/hook/{n}?q=1")), b'{"n":%d}' % n,
                              {"X-Oncall-Delivery": str(n), "Content-Type": "application/json"})
    finally:
        await poster.close()
    assert [r.path for r in receiver.requests] == ["/hook/0", "/hook/1", "/hook/2"]
    assert [r.body for r in receiver.requests] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    first = receiver.requests[0].headers
    assert first["X-Oncall-Delivery"] == "0" and first["User-Agent"] == "oncall/0.1"
    assert first["Host"] == f"{server.host}:{server.port}"
    assert len(peers) == 3 and len(set(peers)) == 1  # one kept-alive connection for all


async def test_answers_framed_every_way_are_read_and_the_connection_reused(
        scripted, client) -> None:
    chunked = (b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n"
               b"4;ext=1\r\nbusy\r\n6\r\n again\r\n0\r\nX-Trailer: t\r\n\r\n")
    empty = b"HTTP/1.1 204 No Content\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    server, url = await scripted([chunked, empty, interim, OK])
    where = http1.target(url)
    assert where is not None
    answers = [await client.post(where, b"body", {"A": "b"}, 5) for _ in range(4)]
    assert [(a.status, a.body) for a in answers] == [
        (503, b"busy again"), (204, b""), (200, b"ok"), (200, b"ok")]
    assert answers[0].headers["retry-after"] == "7"
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert server.requests[0].endswith(b"A: b\r\nContent-Length: 4\r\n\r\nbody")


async def test_a_body_ended_by_closing_and_connection_close_are_not_reused(
        scripted, client) -> None:
    until_close = b"HTTP/1.1 500 Oops\r\n\r\nsomething broke"
    server, url = await scripted([until_close])
    where = http1.target(url)
    assert where is not None
    answer = await client.post(where, b"x", {}, 5)
    assert (answer.status, answer.body) == (500, b"something broke")
    server.answers = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                      OK]
    assert (await client.post(where, b"x", {}, 5)).status == 200
    assert (await client.post(where, b"x", {}, 5)).status == 200
    assert server.connections == 3


async def test_a_kept_connection_the_receiver_closed_is_replaced(scripted, client) -> None:
    # The receiver takes the second request on the kept connection and closes it without
    # answering (an idle timeout racing the request): sent again, once, on a new one.
    server, url = await scripted([OK, None, OK])
    where = http1.target(url)
    assert where is not None
    assert (await client.post(where, b"1", {}, 5)).status == 200
    assert (await client.post(where, b"2", {}, 5)).status == 200
    assert server.connections == 2
    assert [r.rpartition(b"\r\n\r\n")[2] for r in server.requests] == [b"1", b"2", b"2"]


async def test_a_new_connection_closed_without_an_answer_fails(scripted) -> None:
    _, url = await scripted([None])
    poster = HttpPoster(system_clock)
    try:
        with pytest.raises(DeliveryError, match="connection failed") as failure:
            await poster.post(url, b"x", {})
    finally:
        await poster.close()
    assert not failure.value.permanent


async def test_an_answer_it_cannot_read_goes_through_aiohttp(scripted) -> None:
    server, url = await scripted([b"HTTP/2 200\r\n\r\n", OK])
    poster = HttpPoster(system_clock)
    try:
        await poster.post(url, b"x", {"X-Oncall-Delivery": "9"})
    finally:
        await poster.close()
    assert server.connections == 2 and len(server.requests) == 2
    assert all(b"X-Oncall-Delivery: 9" in r for r in server.requests)


async def test_unreadable_answers_are_unsupported(scripted, client) -> None:
    for answer in (b"HTTP/2 200\r\n\r\n", b"HTTP/1.1 2xx OK\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        _, url = await scripted([answer])
        where = http1.target(url)
        assert where is not None
        with pytest.raises(http1.Unsupported):
            await client.post(where, b"x", {}, 5)


async def test_no_answer_in_time_is_a_retryable_failure(scripted) -> None:
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
    receiver = HttpReceiver(statuses=[503, 404], reply_headers={"Retry-After": "30"})
    server = await aiohttp_server(receiver.app())
    poster = HttpPoster(system_clock)
    try:
        with pytest.raises(DeliveryError) as busy:
            await poster.post(str(server.make_url("/")), b"x", {})
        with pytest.raises(DeliveryError) as gone:
            await poster.post(str(server.make_url("/")), b"x", {})
        refused_url = str(server.make_url("/"))
    finally:
        await poster.close()
    assert not busy.value.permanent and busy.value.retry_after == timedelta(seconds=30)
    assert busy.value.message == "HTTP 503: nope"
    assert gone.value.permanent and gone.value.message == "HTTP 404: nope"
    await server.close()
    poster = HttpPoster(system_clock)
    try:
        with pytest.raises(DeliveryError, match="connection failed: ConnectionRefusedError"):
            await poster.post(refused_url, b"x", {})
    finally:
        await poster.close()


async def test_requests_to_one_receiver_share_a_bounded_set_of_connections(
        scripted, client, monkeypatch) -> None:
    monkeypatch.setattr(http1, "MAX_CONNECTIONS", 2)
    server, url = await scripted([OK] * 6)
    where = http1.target(url)
    assert where is not None
    answers = await asyncio.gather(*(client.post(where, b"x", {}, 5) for _ in range(6)))
    assert [a.status for a in answers] == [200] * 6
    assert server.connections == 2  # the other four waited for one of the two


@pytest.mark.parametrize("value", ["t=1\r\nX-Injected: 1", "\u0142ukasz"],
                         ids=["a line break", "beyond Latin-1"])
async def test_a_header_it_cannot_write_is_left_to_aiohttp(scripted, client, value) -> None:
    server, url = await scripted([OK])
    where = http1.target(url)
    assert where is not None
    with pytest.raises(http1.Unsupported):
        await client.post(where, b"x", {"X-Oncall-Signature": value}, 5)
    assert server.requests == []
