"""Module-level job functions, referenced by text (`oncall.timers.jobs:run_escalation_step`).

APScheduler calls them in its own thread; each hands its job to the event loop and returns
at once (`Runtime.hand_over`), so the scheduler thread never waits for the database. A job
carries only IDs, the last one naming the deployment that wrote it, and re-reads
everything when it runs. The process installs its runtime here at start-up; a job that
fires with none installed is a programming error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oncall.incidents.wakes import WAKE_JOB
from oncall.timers.followups import DELIVERY_JOB, HEARTBEAT_JOB, MAINTENANCE_JOB, STEP_JOB

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


def deliver_notification(notification_id: int, deployment: str = "") -> None:
    """Make the next delivery attempt of a pending notification, if it is due."""
    _installed().hand_over(DELIVERY_JOB, (notification_id,), deployment)


def check_heartbeat(name: str, deployment: str = "") -> None:
    """Open an incident for a heartbeat whose deadline passed without a ping."""
    _installed().hand_over(HEARTBEAT_JOB, (name,), deployment)


def run_escalation_step(incident_id: int, level: int, repeat: int, deployment: str = "") -> None:
    """Fire step (level, repeat) of an incident if it is still pending and due."""
    _installed().hand_over(STEP_JOB, (incident_id, level, repeat), deployment)


def wake_incident(incident_id: int, deployment: str = "") -> None:
    """Trigger an incident again if its snooze ended or its acknowledgement timed out."""
    _installed().hand_over(WAKE_JOB, (incident_id,), deployment)


def apply_maintenance(deployment: str = "") -> None:
    """Apply the maintenance windows: one of them opened or closed."""
    _installed().hand_over(MAINTENANCE_JOB, (), deployment)
