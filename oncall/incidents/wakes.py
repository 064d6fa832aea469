"""An incident's wake timers: a snooze's end and an acknowledgement's timeout. Each is a due
time on the incident row (the truth); a Redis job under one fixed id per incident only wakes
the process, which then decides from the row. Pure.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from oncall.directory.model import Directory
from oncall.durations import parse_duration
from oncall.errors import Conflict, InvalidInput
from oncall.escalation.steps import FIRST_STEP
from oncall.incidents.actions import Restart
from oncall.incidents.lifecycle import ACKNOWLEDGED, RESOLVED
from oncall.timers.followups import ESCALATION, JobSpec

WAKE_JOB = "oncall.timers.jobs:wake_incident"
MAX_SNOOZE = timedelta(weeks=1)  # longer is a typo, or a reason to resolve instead
SNOOZED = "incident.snoozed"
SNOOZE_ENDED = "incident.snooze_ended"
ACK_TIMEOUT = "incident.ack_timeout"


def snooze_duration(value: Any) -> timedelta:
    """Return a snooze's length from a Prometheus duration; raises InvalidInput naming
    `duration` unless it is a string above zero and at most MAX_SNOOZE."""
    if not isinstance(value, str):
        raise InvalidInput("expected a duration such as 1h", "duration")
    try:
        duration = parse_duration(value)
    except ValueError as error:
        raise InvalidInput(str(error), "duration") from None
    if duration <= timedelta(0):
        raise InvalidInput("a snooze must last more than zero", "duration")
    if duration > MAX_SNOOZE:
        raise InvalidInput("a snooze lasts at most 1w", "duration")
    return duration


def snooze_end(now: datetime, duration: timedelta) -> datetime:
    """Return when a snooze asked for at `now` ends, to the whole second: the same request
    twice within a second asks for the same end."""
    return (now + duration).replace(microsecond=0)


def snooze(incident_id: int, status: str, current: datetime | None, until: datetime) -> bool:
    """Return whether snoozing until `until` changes the incident (False: it is already
    snoozed until then; another end replaces the current one). Raises Conflict when it is
    resolved."""
    if status == RESOLVED:
        raise Conflict(f"incident {incident_id} is resolved", "status")
    return not (status == ACKNOWLEDGED and current == until)


def wake_due(snoozed_until: datetime | None, ack_timeout_at: datetime | None) -> datetime | None:
    """Return when the incident's wake job must run (None: nothing pending)."""
    pending = [due for due in (snoozed_until, ack_timeout_at) if due is not None]
    return min(pending) if pending else None


def wake(
    status: str,
    snoozed_until: datetime | None,
    ack_timeout_at: datetime | None,
    policy: str | None,
    now: datetime,
) -> Restart | None:
    """Return the restart at level 1 a wake makes of the incident: its snooze ended or its
    acknowledgement timed out. None when nothing is due (resolved, triggered again already,
    or woken early by a job of an older due time)."""
    if status != ACKNOWLEDGED:
        return None
    if snoozed_until is not None and snoozed_until <= now:
        return Restart(FIRST_STEP, policy or "", SNOOZE_ENDED, {"until": snoozed_until.isoformat()})
    if ack_timeout_at is not None and ack_timeout_at <= now:
        return Restart(FIRST_STEP, policy or "", ACK_TIMEOUT, {"at": ack_timeout_at.isoformat()})
    return None


def ack_timeout(directory: Directory, route: str | None, policy: str | None) -> timedelta | None:
    """Return how long an acknowledgement of an incident lasts (None: for ever): its route's
    `ack_timeout` (the route it opened on, by its description), else its policy's."""
    for candidate in directory.routes:
        if candidate.describe() == route and candidate.ack_timeout is not None:
            return candidate.ack_timeout
    found = directory.policies.get(policy or "")
    return found.ack_timeout if found is not None else None


def wake_job_id(incident_id: int) -> str:
    """Return the fixed job id of an incident's wake timer."""
    return f"incident:{incident_id}:wake"


def wake_job(incident_id: int, due: datetime) -> JobSpec:
    """Return the job that wakes the incident at `due` (in the escalation store)."""
    return JobSpec(ESCALATION, wake_job_id(incident_id), WAKE_JOB, (incident_id,), due)
