"""Work the process runs in the background (job runs, immediate deliveries), tracked so that
shutdown can let it finish before the database closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

_running: set[asyncio.Task[Any]] = set()


async def tracked(work: Coroutine[Any, Any, None]) -> None:
    """Await `work` with the current task tracked until it ends."""
    # APScheduler's AsyncIOExecutor cancels its tasks at shutdown without awaiting them;
    # tracking them here lets shutdown drain them before the database closes.
    task = asyncio.current_task()
    assert task is not None
    _running.add(task)
    try:
        await work
    finally:
        _running.discard(task)


def spawn(work: Coroutine[Any, Any, None]) -> asyncio.Task[Any]:
    """Run `work` as a tracked task and return it (the task keeps a reference to itself)."""
    task = asyncio.get_running_loop().create_task(work)
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def drain(grace: float) -> None:
    """Let running work finish for up to `grace` seconds, then cancel and await the rest."""
    if _running:
        await asyncio.wait(list(_running), timeout=grace)
    while _running:
        for task in list(_running):
            task.cancel()
        await asyncio.wait(list(_running))
