"""A shutdown ends even when some work will not: background work that ignores its
cancellation and a transaction that never finishes are left behind, logged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from oncall.db.engine import Database, make_engine
from oncall.settings import Settings
from oncall.timers.background import Background

# A guard against hanging, not a measurement.
HANG_GUARD = 30.0


async def test_drain_leaves_work_that_ignores_its_cancellation(caplog):
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # a job that swallows it
                await released.wait()

    background = Background()
    task = background.spawn(stubborn())
    finished = background.spawn(asyncio.sleep(0))
    stuck = await asyncio.wait_for(background.drain(0.05), HANG_GUARD)
    assert stuck == [task] and finished.done()
    assert "did not end when cancelled" in caplog.text
    released.set()
    await task


async def test_closing_the_database_does_not_wait_for_ever_for_a_transaction(
    make_settings: Callable[..., Settings], caplog: Any
):
    database = Database(make_engine(make_settings().database))
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    database._in_flight.add(never)  # a transaction waiting on a lock nobody releases
    await asyncio.wait_for(database.close(grace=0.05), HANG_GUARD)
    assert "transactions still under way" in caplog.text
    never.cancel()
