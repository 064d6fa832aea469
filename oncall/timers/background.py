"""Work the process runs in the background (job runs, pages sent at once), tracked so that
shutdown can let it finish before the database closes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """The tasks of one process's background work."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()
        self._keys: set[Hashable] = set()

    def exclusive(self, key: Hashable, work: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
        """Run `work()` as a tracked task unless work of the same `key` is still running;
        return whether it started. A step, a delivery or a heartbeat can be woken twice at
        once (its job and the database sweep, or a job Redis handed out again): one run at
        a time, and the database's conditional claims decide whether it does anything."""
        if key in self._keys:
            return False
        self._keys.add(key)
        task = self.spawn(work())
        task.add_done_callback(lambda _: self._keys.discard(key))
        return True

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `work` as a tracked task and return it (the set keeps a reference to it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def drain(self, grace: float) -> list[asyncio.Task[Any]]:
        """Let running work finish for up to `grace` seconds, then cancel the rest and give
        them `grace` more to end; return those that still did not (logged and left: a
        shutdown must end, and the database's claims let the work run again later)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace)
        if self._running:
            for task in list(self._running):
                task.cancel()
            await asyncio.wait(list(self._running), timeout=grace)
        stuck = list(self._running)
        if stuck:
            log.warning(
                "background work did not end when cancelled; left behind",
                extra={"tasks": [task.get_name() for task in stuck]},
            )
        return stuck
