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


class BodyTimeout(OncallError):
    """The body did not arrive within `[server] body_timeout`."""

    status = 408


async def read_body(request: web.Request, limit: int) -> bytes:
    """Return the request body of at most `limit` bytes.

    Raises PayloadTooLarge when Content-Length announces more (before reading any of it)
    or when more arrives, and BodyTimeout when the body is not complete within
    `[server] body_timeout`; after a BodyTimeout the connection is closed once the answer
    is sent.
    """
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
    """Close the connection as soon as this request's answer is written.

    aiohttp would otherwise keep reading (and discarding) the rest of an unfinished body
    for its lingering time, which a sender trickling bytes turns into a held connection.
    The request runs in a task of its own, done once the answer is written.
    """
    task = asyncio.current_task()
    if task is not None:
        protocol = request.protocol
        task.add_done_callback(lambda _: protocol.force_close())
