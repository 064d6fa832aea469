"""A small HTTP/1.1 client for the one request pages make: a POST of a body to a plain
`http://` URL over kept-alive connections.

aiohttp's client cost about 250 us of CPU per POST here (a request object, a response
object, a timer, a connector lease, header multidicts); this about 80 to 90, and a page's
send shares the event loop's one core with ingest. It covers what receivers answer: a
status line, headers, a body framed by Content-Length, chunked encoding or the end of the
connection. Anything else (a URL it does not handle, an answer it cannot read) raises
`Unsupported`, and the caller sends through aiohttp instead; HTTPS always goes there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024  # bytes of status line and headers
MAX_BODY = 1024 * 1024  # bytes of body read; a longer one ends its connection's reuse
MAX_CONNECTIONS = 32  # open at once per host and port; more requests wait their turn


class Unsupported(Exception):
    """The URL or the answer is beyond this client; send through aiohttp instead."""


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes  # up to MAX_BODY


class Target(NamedTuple):
    host: str  # for connecting (an IPv6 address without brackets)
    port: int
    netloc: str  # for the Host header
    path: str  # path and query


def target(url: str) -> Target | None:
    """Return where a POST to `url` goes, or None when this client does not handle it
    (not plain http, user info, characters a request line cannot carry)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        return None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not all(" " < ch < "\x7f" for ch in path + parts.netloc):
        return None  # aiohttp percent-encodes what a request line cannot carry
    return Target(parts.hostname, port, parts.netloc, path)


class _Connection(asyncio.Protocol):
    """One TCP connection: sends a request, parses its answer, then may be reused."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[Answer] | None = None
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, reusable
        self._framing: str = ""  # "length", "chunked" or "close"
        # Body bytes still expected ("length"); with "chunked", those of the current chunk,
        # then -1 while its closing CRLF is due, -2 while trailers are read, 0 between chunks.
        self._remaining = 0
        self._body = bytearray()
        self.reusable = False
        self.received = False  # any byte of an answer arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._head is not None and self._framing == "close":
            self._finish()  # the end of the connection is the end of this body
        else:
            answer.set_exception(ConnectionResetError("connection closed before the answer"))

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        """Send a whole request; return the future of its answer."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._buffer.clear()
        self._body.clear()
        self._head = None
        self._remaining = 0
        self.reusable = False
        self.received = False
        self.transport.write(data)
        return self._answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        answer = self._answer
        if answer is None or answer.done():
            self.close()  # bytes nobody asked for: the connection is not in a known state
            return
        self.received = True
        self._buffer += data
        try:
            self._parse()
        except Unsupported as error:
            self.close()
            answer.set_exception(error)

    def _parse(self) -> None:
        while self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise Unsupported("answer head too large")
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[:end + 4]
            status, headers, keep_alive = _read_head(head)
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue): the real one follows
            self._head = (status, headers, keep_alive)
            encoding = headers.get("transfer-encoding", "").lower()
            length = headers.get("content-length")
            if status in (204, 304):
                self._framing, self._remaining = "length", 0
            elif encoding:
                if encoding.replace(" ", "").split(",")[-1] != "chunked":
                    self._framing = "close"
                else:
                    self._framing, self._remaining = "chunked", 0
            elif length is not None:
                if not length.strip().isdigit():
                    raise Unsupported("unreadable Content-Length")
                self._framing, self._remaining = "length", int(length)
            else:
                self._framing = "close"
        if self._framing == "length":
            self._take_remaining()
            if self._remaining == 0:
                self._finish(reusable=not self._buffer)
            elif len(self._body) >= MAX_BODY:
                self._finish(reusable=False)
        elif self._framing == "chunked":
            self._parse_chunks()
        else:
            self._keep(self._buffer)
            self._buffer.clear()
            if len(self._body) >= MAX_BODY:
                self._finish(reusable=False)

    def _parse_chunks(self) -> None:
        while True:
            if self._remaining > 0:  # inside a chunk's data
                self._take_remaining()
                if self._remaining > 0:
                    break
                self._remaining = -1  # the CRLF after the data comes next
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise Unsupported("chunk line too long")
                break
            line = bytes(self._buffer[:line_end])
            del self._buffer[:line_end + 2]
            if self._remaining == -1:  # the CRLF closing a chunk's data
                if line:
                    raise Unsupported("malformed chunk")
                self._remaining = 0
                continue
            if self._remaining == -2:  # trailers, up to an empty line
                if not line:
                    self._finish(reusable=not self._buffer)
                    return
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise Unsupported("malformed chunk size") from None
            if size == 0:
                self._remaining = -2
            else:
                self._remaining = size
        if len(self._body) >= MAX_BODY:
            self._finish(reusable=False)

    def _take_remaining(self) -> None:
        """Move up to `_remaining` buffered bytes into the body, counting them off."""
        take = min(self._remaining, len(self._buffer))
        self._keep(self._buffer[:take])
        del self._buffer[:take]
        self._remaining -= take

    def _keep(self, data: bytes | bytearray) -> None:
        room = MAX_BODY - len(self._body)
        if room > 0:
            self._body += data[:room]

    def _finish(self, reusable: bool = False) -> None:
        assert self._head is not None and self._answer is not None
        status, headers, keep_alive = self._head
        self.reusable = reusable and keep_alive and not self.closed
        if not self.reusable:
            self.close()
        if not self._answer.done():
            self._answer.set_result(Answer(status, headers, bytes(self._body)))


def _read_head(head: str) -> tuple[int, dict[str, str], bool]:
    """Return the status, headers and whether the connection stays open after the body.
    Raises Unsupported for a head that is not HTTP/1.x."""
    lines = head.split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise Unsupported("not an HTTP/1.x answer")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise Unsupported("malformed header line")
        headers[name.lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    # HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0 only when told.
    keep_alive = ("close" not in connection if version == "HTTP/1.1"
                  else "keep-alive" in connection)
    return int(code), headers, keep_alive


class Client:
    """POSTs over kept-alive connections, per host and port. One per event loop."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        # A storm's pages must not open a connection each to one receiver (nor run this
        # process out of file descriptors): as aiohttp's connector limits them, so does this.
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}

    async def post(self, where: Target, body: bytes, headers: Mapping[str, str],
                   timeout: float) -> Answer:
        """POST `body` with `headers` (Host and Content-Length are added) and return the
        answer. Raises TimeoutError, OSError (refused, reset) or Unsupported.

        At most MAX_CONNECTIONS requests to one host and port are under way at once; the
        others wait, within `timeout`. A kept-alive connection the receiver closed
        meanwhile fails before any answer; the request is then sent once more on a new
        connection (pages carry an idempotency key, and a receiver that closed the
        connection did not read it)."""
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        # Each header ends in the one CRLF written here; any other CR or LF came in a
        # name or value and would start a header of its own.
        if lines.count("\r") != len(headers) or lines.count("\n") != len(headers):
            raise Unsupported("a header with a line break")  # aiohttp refuses it too
        try:
            data = (f"POST {where.path} HTTP/1.1\r\nHost: {where.netloc}\r\n{lines}"
                    f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body
        except UnicodeEncodeError:  # a header value beyond Latin-1: leave it to aiohttp
            raise Unsupported("a header that is not Latin-1") from None
        key = (where.host, where.port)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(MAX_CONNECTIONS)
        async with asyncio.timeout(timeout), slots:
            connection = self._take_idle(where)
            if connection is not None:
                try:
                    return await self._exchange(where, connection, data)
                except OSError:
                    if connection.received:
                        raise
            return await self._exchange(where, await self._connect(where), data)

    async def _exchange(self, where: Target, connection: _Connection, data: bytes) -> Answer:
        try:
            answer = await connection.request(data)
        except BaseException:  # a timeout or cancellation leaves it mid-answer: not reusable
            connection.close()
            raise
        if connection.reusable:  # at most MAX_CONNECTIONS exist, so the idle list is bounded
            self._idle.setdefault((where.host, where.port), []).append(connection)
        return answer

    def _take_idle(self, where: Target) -> _Connection | None:
        idle = self._idle.get((where.host, where.port))
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if not connection.closed and transport is not None and not transport.is_closing():
                return connection
        return None

    async def _connect(self, where: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, where.host, where.port)
        return connection

    def close(self) -> None:
        """Close every idle connection (and forget the limits: they belong to this loop)."""
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._slots.clear()
