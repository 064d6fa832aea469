"""Module-level job functions, referenced by text (`oncall.jobs:run_escalation_step`).

A job carries only IDs and re-reads everything when it fires. The process installs its
Service here at start-up; a job that fires with none installed is a programming error.
"""

from __future__ import annotations

from oncall import background
from oncall.escalation import Step
from oncall.service import Service

_service: Service | None = None


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


def _installed() -> Service:
    if _service is None:
        raise RuntimeError("no Service installed: jobs run only inside a started app")
    return _service


async def deliver_notification(notification_id: int) -> None:
    """Make the next delivery attempt of a pending notification, if it is due."""
    service = _installed()
    assert service.notifier is not None
    await background.tracked(service.notifier.deliver(notification_id))


async def check_heartbeat(name: str) -> None:
    """Open an incident for a heartbeat whose deadline passed without a ping."""
    await background.tracked(_installed().check_heartbeat(name))


async def run_escalation_step(incident_id: int, level: int, repeat: int) -> None:
    """Fire step (level, repeat) of an incident if it is still pending; else do nothing."""
    await background.tracked(_installed().run_step(incident_id, Step(level, repeat)))
