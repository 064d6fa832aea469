"""Module-level job functions, referenced by text (`oncall.timers.jobs:run_escalation_step`).

A job carries only IDs and re-reads everything when it fires. The process installs its
runtime here at start-up; a job that fires with none installed is a programming error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oncall.escalation.steps import Step

if TYPE_CHECKING:
    from oncall.runtime import Runtime

_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Make `runtime` the one the jobs of this process use."""
    global _runtime
    if _runtime is not None and _runtime is not runtime:
        raise RuntimeError("another runtime is already installed for jobs in this process")
    _runtime = runtime


def uninstall(runtime: Runtime) -> None:
    global _runtime
    if _runtime is runtime:
        _runtime = None


def _installed() -> Runtime:
    if _runtime is None:
        raise RuntimeError("no runtime installed: jobs run only inside a started app")
    return _runtime


async def deliver_notification(notification_id: int) -> None:
    """Make the next delivery attempt of a pending notification, if it is due."""
    runtime = _installed()
    await runtime.background.tracked(runtime.notifier.deliver(notification_id))


async def check_heartbeat(name: str) -> None:
    """Open an incident for a heartbeat whose deadline passed without a ping."""
    runtime = _installed()
    await runtime.background.tracked(runtime.ingest.check_heartbeat(name))


async def run_escalation_step(incident_id: int, level: int, repeat: int) -> None:
    """Fire step (level, repeat) of an incident if it is still pending; else do nothing."""
    runtime = _installed()
    await runtime.background.tracked(runtime.escalation.run_step(incident_id, Step(level, repeat)))
