"""Work the process runs in the background (job runs, pages sent at once), tracked so that
shutdown can let it finish before the database closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Background:
    """The tasks of one process's background work."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    async def tracked(self, work: Coroutine[Any, Any, Any]) -> None:
        """Await `work` with the current task tracked until it ends."""
        # APScheduler's AsyncIOExecutor cancels its tasks at shutdown without awaiting
        # them; tracking them here lets shutdown drain them before the database closes.
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await work
        finally:
            self._running.discard(task)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `work` as a tracked task and return it (the set keeps a reference to it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def drain(self, grace: float) -> None:
        """Let running work finish for up to `grace` seconds, then cancel and await the rest."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace)
        while self._running:
            for task in list(self._running):
                task.cancel()
            await asyncio.wait(list(self._running))
