"""Waiting for what the system does on its own, and reading what it counted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from oncall.web.keys import RUNTIME


async def eventually(
    condition: Callable[[], Awaitable[Any]], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Return the first truthy result of `condition()`, polled until `timeout` seconds pass.

    This awaits a state the system reaches on its own (a timer firing); it is not a sleep
    that hopes something has happened.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def counted(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    """Return a counter's value in the app's metrics (0 before its first increment)."""
    return client.app[RUNTIME].metrics.value(name, **labels)
