"""Reading request bodies, bounded before anything else: each route's own size cap, checked
from Content-Length before a byte is read and again while reading (chunked bodies), and a
deadline for the whole body (`[server] body_timeout`).

The only way handlers read a body, so no route buffers more than its cap and no sender
holds a request open by trickling it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from oncall.errors import OncallError, PayloadTooLarge
from oncall.web.keys import SETTINGS

# Heartbeat pings and API JSON bodies: a few fields each.
SMALL_BODY = 64 * 1024
# Seconds a connection stays open, reading and discarding, after its timed-out answer.
LINGER = 1.0


class EncodedBody(OncallError):
    """The body has a `Content-Encoding` (gzip, say): no alert source compresses its
    posts, and inflating one is work an anonymous sender could multiply."""

    status = 415


class BodyTimeout(OncallError):
    """The body did not arrive within `[server] body_timeout`."""

    status = 408


async def read_body(request: web.Request, limit: int, *, content: bool = True) -> bytes:
    """Return the request body of at most `limit` bytes, as sent (never inflated).

    Raises EncodedBody for a body with a Content-Encoding other than identity, unless
    `content` is False (the caller discards the body, so its encoding does not matter);
    PayloadTooLarge when Content-Length announces more (before reading any of it)
    or when more arrives, and BodyTimeout when the body is not complete within
    `[server] body_timeout`; after a BodyTimeout the connection is closed once the answer
    is sent.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if content and encoding != "identity":
        raise EncodedBody("compressed request bodies are not accepted", "Content-Encoding")
    announced = request.content_length
    if announced is not None and announced > limit:
        raise too_large(limit)
    deadline = request.app[SETTINGS].server.body_timeout.total_seconds()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        _close_after_answer(request)
        raise BodyTimeout(
            f"the request body did not arrive within {deadline:g} seconds", "$"
        ) from None
    return b"".join(chunks)


def too_large(limit: int) -> PayloadTooLarge:
    """Return the error for a body over `limit` bytes."""
    return PayloadTooLarge(f"request bodies are limited to {limit} bytes", "$")


def _close_after_answer(request: web.Request) -> None:
    """Close the connection soon after this request's answer is written.

    aiohttp would otherwise keep reading (and discarding) the rest of an unfinished body
    for its lingering time, which a sender trickling bytes turns into a held connection.
    Closing at once is no better: a socket closed with the sender's bytes unread is reset,
    and the reset discards the answer still on its way. So the answer is followed by a FIN
    (the sender sees the end), and the socket is closed a moment later. The request runs
    in a task of its own, done once the answer is written.
    """
    task = asyncio.current_task()
    if task is None:
        return
    protocol = request.protocol
    transport = request.transport

    def finish(_: object) -> None:
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER, protocol.force_close)

    task.add_done_callback(finish)
