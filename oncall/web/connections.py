"""Listening sockets that bound the connections one client address holds, the process's
file limit, and log lines that a flood of connections cannot multiply.

aiohttp has no per-address limit: `LimitedSite` is its TCP site with a protocol factory
that counts open connections per peer address and closes, at once, each one over
`[server] max_connections_per_address`, before aiohttp sees it. With TLS the connection is
counted (or refused) before its handshake, which it then does within HANDSHAKE_TIMEOUT: a
refused connection costs no handshake, and one that never finishes its handshake still
holds a place of its address.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from yarl import URL

from oncall.web.clients import client_block

log = logging.getLogger(__name__)
# How often at most one kind of refusal is logged; the lines between are counted.
LOG_INTERVAL = 60.0
ACCEPT_ERROR = "socket.accept() out of system resource"
# A TLS client must finish its handshake within this long of connecting (asyncio's default
# is 60 s): a client that only connects holds a descriptor no longer than one that stalls
# its request (KEEPALIVE_TIMEOUT bounds those).
HANDSHAKE_TIMEOUT = 10.0


class LogThrottle:
    """Lets one log line through per `interval` seconds and counts the ones held back."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self.last: float | None = None
        self.held = 0

    def allow(self, now: float) -> int | None:
        """Return how many lines were held back since the last one let through, when a line
        may be written at `now`; None when this one is held back (and counted)."""
        if self.last is not None and now - self.last < self.interval:
            self.held += 1
            return None
        held, self.held, self.last = self.held, 0, now
        return held


class ConnectionLimit:
    """Open connections per client address, at most `limit` each (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        """Return whether one more connection from `address` is allowed; counts it if so."""
        if self.limit and self.open[address] >= self.limit:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        """Forget one connection of `address` (admitted earlier)."""
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


def peer_address(transport: asyncio.BaseTransport) -> str:
    """Return the transport's peer IP address ("" when the socket has none)."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class CountedProtocol(asyncio.Protocol):
    """One connection: counted against its address, then handed to aiohttp's protocol.

    Over the limit, the connection is closed in `connection_made` and aiohttp's protocol is
    never built, so a refused connection costs a file descriptor only until then. With
    `tls`, an admitted connection does its handshake first (this protocol then receives the
    decrypted stream) and aiohttp's protocol is built once it succeeded; what the client
    sent right after its handshake, before that, is kept for it.
    """

    __slots__ = (
        "_address",
        "_early",
        "_handshake",
        "_inner",
        "_limits",
        "_lost",
        "_make",
        "_refusals",
        "_tls",
    )

    def __init__(
        self,
        make: Callable[[], asyncio.Protocol],
        limits: ConnectionLimit,
        refusals: LogThrottle,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._make = make
        self._limits = limits
        self._refusals = refusals
        self._tls = tls
        self._address: str | None = None
        self._inner: asyncio.Protocol | None = None
        self._lost = False
        self._handshake: asyncio.Task[None] | None = None
        self._early: list[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = client_block(peer_address(transport))
        if not self._limits.admit(address):
            transport.close()
            held = self._refusals.allow(time.monotonic())
            if held is not None:
                log.warning(
                    "connection refused: its address holds the most connections allowed",
                    extra={"remote": address, "limit": self._limits.limit, "since_last": held},
                )
            return
        self._address = address
        if self._tls is None:
            self._serve(transport)
            return
        # Nothing may be read before asyncio's TLS protocol takes the transport over: the
        # first bytes are the client's hello.
        assert isinstance(transport, asyncio.Transport)  # a TCP server's
        transport.pause_reading()
        self._early = []
        self._handshake = asyncio.ensure_future(self._start_tls(transport, self._tls))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        if self._lost:  # closed before its handshake could begin
            return
        try:
            secured = await asyncio.get_running_loop().start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except Exception:
            # Plain HTTP on the TLS port, a client that distrusts the certificate, went
            # away or stalled (ssl.SSLError, ConnectionError): nothing to answer, and
            # nothing worth a log line per connection.
            transport.close()
            self._release()
            return
        if self._lost or secured is None:
            return
        self._serve(secured)
        early, self._early = self._early or [], None
        for data in early:
            self.data_received(data)

    def _serve(self, transport: asyncio.BaseTransport) -> None:
        self._inner = self._make()
        self._inner.connection_made(transport)

    def _release(self) -> None:
        if self._address is not None:
            self._limits.release(self._address)
            self._address = None

    def connection_lost(self, exc: Exception | None) -> None:
        # Once per connection, whether it ends before, during or after its handshake.
        self._lost = True
        self._release()
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)
        elif self._early is not None:  # decrypted before aiohttp's protocol was built
            self._early.append(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class LimitedSite(web.BaseSite):
    """aiohttp's TCP site on `host:port`, each connection counted in `limits`."""

    __slots__ = ("_host", "_limits", "_port", "_refusals")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: ConnectionLimit,
        refusals: LogThrottle,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._limits = limits
        self._refusals = refusals

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return str(URL.build(scheme=scheme, host=self._host, port=self.port))

    @property
    def port(self) -> int:
        """Return the port listened on (the bound one once started, for port 0)."""
        if self._server is not None and self._server.sockets:  # type: ignore[attr-defined]
            return int(self._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None  # BaseSite refuses a runner that was not set up
        self._server = await asyncio.get_running_loop().create_server(
            lambda: CountedProtocol(server, self._limits, self._refusals, self._ssl_context),
            self._host,
            self._port,
            backlog=self._backlog,
        )


def split_listen_address(text: str) -> tuple[str, int]:
    """Return (host, port) of a `host:port` setting (IPv6 hosts may be in brackets)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def raised_file_limit(soft: int, hard: int) -> int:
    """Return the soft limit of open files to ask for: the hard limit, unless that is
    unlimited or lower than what is already allowed."""
    if hard == resource.RLIM_INFINITY:
        return soft
    return max(soft, hard)


def raise_file_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit; return (before, after).

    Each connection, database connection and log file is one descriptor; the soft limit
    is often far below what the system allows. A refusal of the change is logged, not
    raised: the service still runs with the lower limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = raised_file_limit(soft, hard)
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit", extra={"error": str(exc)})
            return soft, soft
    return soft, wanted


def throttled_accept_errors(
    loop: asyncio.AbstractEventLoop, throttle: LogThrottle
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """Return an event loop exception handler that logs asyncio's "out of system resource"
    accept errors (EMFILE: too many open files) through `throttle`, and hands everything
    else to the loop's default handler.

    asyncio logs each failed accept with a traceback; while the process is out of file
    descriptors that repeats for as long as the pressure lasts.
    """
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_ERROR:
            held = throttle.allow(time.monotonic())
            if held is not None:
                log.error(
                    "cannot accept connections: out of file descriptors or memory",
                    extra={"error": str(context.get("exception")), "since_last": held},
                )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle
