"""Module-level job functions, referenced by text (`oncall.jobs:run_escalation_step`).

A job carries only IDs and re-reads everything when it fires. The process installs its
Service here at start-up; a job that fires with none installed is a programming error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from oncall.escalation import Step
from oncall.service import Service

_service: Service | None = None
_running: set[asyncio.Task[None]] = set()


def install(service: Service) -> None:
    """Make `service` the one the jobs of this process use."""
    global _service
    if _service is not None and _service is not service:
        raise RuntimeError("another Service is already installed for jobs in this process")
    _service = service


def uninstall(service: Service) -> None:
    global _service
    if _service is service:
        _service = None


async def _tracked(work: Awaitable[None]) -> None:
    # APScheduler's AsyncIOExecutor cancels its tasks at shutdown without awaiting them;
    # tracking them here lets shutdown drain them before the database closes.
    task = asyncio.current_task()
    assert task is not None
    _running.add(task)
    try:
        await work
    finally:
        _running.discard(task)


async def drain(grace: float) -> None:
    """Let running jobs finish for up to `grace` seconds, then cancel and await the rest."""
    if _running:
        await asyncio.wait(list(_running), timeout=grace)
    while _running:
        for task in list(_running):
            task.cancel()
        await asyncio.wait(list(_running))


def _installed() -> Service:
    if _service is None:
        raise RuntimeError("no Service installed: jobs run only inside a started app")
    return _service


async def deliver_notification(notification_id: int) -> None:
    """Make the next delivery attempt of a pending notification, if it is due."""
    service = _installed()
    assert service.notifier is not None
    await _tracked(service.notifier.deliver(notification_id))


async def check_heartbeat(name: str) -> None:
    """Open an incident for a heartbeat whose deadline passed without a ping."""
    await _tracked(_installed().check_heartbeat(name))


async def run_escalation_step(incident_id: int, level: int, repeat: int) -> None:
    """Fire step (level, repeat) of an incident if it is still pending; else do nothing."""
    await _tracked(_installed().run_step(incident_id, Step(level, repeat)))
