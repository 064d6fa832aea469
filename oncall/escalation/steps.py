"""The escalation sequence of a policy, as pure functions of the policy and `now`.

A policy with levels L1..Ln and `repeat: K` pages the steps (1,0) .. (n,0), (1,1) .. (n,K):
level from 1, repeat from 0. Each step's job id is `incident:{id}:level:{l}:repeat:{r}`.
After the last step has waited its level's `escalate_after`, one more timer marks the
escalation exhausted (`incident:{id}:exhausted`); the incident stays triggered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oncall.directory.model import HIGH, LOW, Policy
from oncall.timers.followups import ESCALATION, STEP_JOB, JobSpec


@dataclass(frozen=True, order=True)
class Step:
    """A pending escalation timer. `level` past the last level means: mark exhausted."""

    level: int
    repeat: int

    def is_exhaustion(self, policy: Policy) -> bool:
        """Return whether this is the timer after the policy's last step."""
        return self.level > len(policy.levels)


FIRST_STEP = Step(1, 0)


def job_id(incident_id: int, step: Step, policy: Policy | None) -> str:
    """Return the fixed APScheduler job id of an incident's step."""
    if policy is not None and step.is_exhaustion(policy):
        return f"incident:{incident_id}:exhausted"
    return f"incident:{incident_id}:level:{step.level}:repeat:{step.repeat}"


def exhaustion_step(policy: Policy) -> Step:
    """Return the timer after a policy's last step: it marks the escalation exhausted."""
    return Step(len(policy.levels) + 1, policy.repeat)


def under(policy: Policy, step: Step) -> Step:
    """Return the step a pending `step` stands for under `policy`, which the directory may
    have changed since the step was scheduled: the step itself while the policy still has
    its level and its pass; past a shortened policy's last level, the next repeat pass if
    the policy still promises one; otherwise the exhaustion marker."""
    if step.repeat > policy.repeat:
        return exhaustion_step(policy)
    if step.level <= len(policy.levels):
        return step
    if step.repeat < policy.repeat:
        return Step(1, step.repeat + 1)
    return exhaustion_step(policy)


def step_job(incident_id: int, step: Step, policy: Policy | None, due: datetime) -> JobSpec:
    """Return the timer job of an incident's step."""
    return JobSpec(
        ESCALATION,
        job_id(incident_id, step, policy),
        STEP_JOB,
        (incident_id, step.level, step.repeat),
        due,
    )


def after(policy: Policy, step: Step, now: datetime) -> tuple[Step, datetime] | None:
    """Return the timer that follows `step` firing at `now`, or None after exhaustion.

    The next step is due at now + the fired level's `escalate_after`, so every level gets its
    whole window even when a step fires late (after an outage, say).
    """
    if step.is_exhaustion(policy):
        return None
    due = now + policy.levels[step.level - 1].escalate_after
    if step.level < len(policy.levels):
        return Step(step.level + 1, step.repeat), due
    if step.repeat < policy.repeat:
        return Step(1, step.repeat + 1), due
    return exhaustion_step(policy), due


def all_steps(policy: Policy) -> list[Step]:
    """Return every paging step of the policy in firing order (no exhaustion marker)."""
    return [
        Step(level, repeat)
        for repeat in range(policy.repeat + 1)
        for level in range(1, len(policy.levels) + 1)
    ]


# Where firing a step leaves its incident: its next level, repeat and due time (None: none).
Pointer = tuple[int, int, datetime | None]


def following(
    policy: Policy | None, step: Step, now: datetime, urgency: str = HIGH
) -> tuple[Step, datetime] | None:
    """Return the step after `step` fires at `now` and when it is due; None after
    exhaustion, when the policy is gone, or for a low-urgency incident (which pages
    one level and does not escalate)."""
    if urgency == LOW:
        return None
    return after(policy, step, now) if policy is not None else None


def pointer(step: Step, next_step: tuple[Step, datetime] | None) -> Pointer:
    """Return where firing `step` leaves its incident: at the following step, or at `step`
    with nothing due."""
    if next_step is None:
        return step.level, step.repeat, None
    step_after, due = next_step
    return step_after.level, step_after.repeat, due


def first_pointer(policy: Policy | None, now: datetime, urgency: str = HIGH) -> Pointer:
    """Return where firing the first step at `now` leaves a new incident of `urgency`.
    The opening INSERT writes it, so the step needs no claiming UPDATE."""
    return pointer(FIRST_STEP, following(policy, FIRST_STEP, now, urgency))
