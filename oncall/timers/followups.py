"""What a committed transaction leaves for Redis and the sender to do. Pure values.

Store functions return `Followups`; the service applies them after the commit (the
timers' writes and removals, the pages claimed in the transaction). If Redis refuses, the
database still holds the truth and the reconciler finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from oncall.notify.outbox import Claimed

# The job stores, and the job functions by the text APScheduler stores.
ESCALATION = "escalation"
NOTIFICATION = "notification"
STORES = (ESCALATION, NOTIFICATION)
STEP_JOB = "oncall.timers.jobs:run_escalation_step"
DELIVERY_JOB = "oncall.timers.jobs:deliver_notification"
HEARTBEAT_JOB = "oncall.timers.jobs:check_heartbeat"
MAINTENANCE_JOB = "oncall.timers.jobs:apply_maintenance"
# A timer this far past due has been missed: /health fails.
OVERDUE_AFTER = timedelta(seconds=30)


class JobSpec(NamedTuple):
    """A date job to add or replace: its store, fixed id, function by name, id-only
    arguments, and when (on the service's clock)."""

    store: str
    job_id: str
    func: str
    args: tuple[int | str, ...]
    run_date: datetime


def delivery_job_id(notification_id: int) -> str:
    """Return the fixed job id of a notification row: every attempt reuses it."""
    return f"notification:{notification_id}"


def delivery_job(notification_id: int, due: datetime) -> JobSpec:
    """Return the job of a notification's next attempt."""
    return JobSpec(
        NOTIFICATION, delivery_job_id(notification_id), DELIVERY_JOB, (notification_id,), due
    )


def heartbeat_job_id(name: str) -> str:
    """Return the fixed job id of a heartbeat's deadline (in the escalation store)."""
    return f"heartbeat:{name}"


def heartbeat_job(name: str, deadline: datetime) -> JobSpec:
    """Return the job that checks a heartbeat's deadline."""
    return JobSpec(ESCALATION, heartbeat_job_id(name), HEARTBEAT_JOB, (name,), deadline)


@dataclass
class Followups:
    jobs: list[JobSpec] = field(default_factory=list)  # to add or replace
    removed: list[tuple[str, str]] = field(default_factory=list)  # (store, job id)
    pages: list[Claimed] = field(default_factory=list)  # claimed: send at once

    def merge(self, other: Followups) -> Followups:
        """Add `other`'s work to this one's; return this one."""
        self.jobs += other.jobs
        self.removed += other.removed
        self.pages += other.pages
        return self
