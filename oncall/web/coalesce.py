"""One computation shared by the callers that ask for it at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs `compute` once for every caller that arrives while a run is under way.

    A caller arriving after a run finished starts a new one, so each answer is at least
    as fresh as the moment it was asked for, yet many concurrent callers cost one run.
    """

    def __init__(self, compute: Callable[[], Awaitable[T]]) -> None:
        self._compute = compute
        self._running: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        """Return the result of the run under way, or of a new one; raises what it raised."""
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._compute())
            running.add_done_callback(self._finished)
        # A caller that goes away (its client disconnected) does not cancel the others' run.
        return await asyncio.shield(running)

    def _finished(self, done: asyncio.Future[T]) -> None:
        if self._running is done:
            self._running = None
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have gone away
