"""What a committed transaction leaves for Redis to do: timers to add and jobs to remove.

Store functions return one of these; the service applies it after commit. If Redis refuses,
the database still holds the truth and the reconciler finishes the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)  # slots: a reconcile may hold 100,000
class Timer:
    """An escalation timer: which step of which incident, when."""

    job_id: str
    incident_id: int
    level: int
    repeat: int
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """A notification delivery attempt to schedule.

    `claimed` is set when the transaction that wrote the page also claimed its first attempt
    (a `store_notify.Claimed`): the page is then sent without another transaction.
    """

    notification_id: int
    due_at: datetime
    claimed: Any = field(default=None, compare=False, repr=False)

    @property
    def job_id(self) -> str:
        return delivery_job_id(self.notification_id)


def delivery_job_id(notification_id: int) -> str:
    """Return the fixed job id of a notification row: every attempt reuses it."""
    return f"notification:{notification_id}"


@dataclass
class Followups:
    timers: list[Timer] = field(default_factory=list)
    removed_jobs: list[str] = field(default_factory=list)  # escalation job ids
    deliveries: list[Delivery] = field(default_factory=list)
    removed_deliveries: list[int] = field(default_factory=list)  # notification ids

    def merge(self, other: Followups) -> None:
        self.timers += other.timers
        self.removed_jobs += other.removed_jobs
        self.deliveries += other.deliveries
        self.removed_deliveries += other.removed_deliveries
