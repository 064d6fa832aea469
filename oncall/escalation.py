"""The escalation sequence of a policy, as pure functions of the policy and `now`.

A policy with levels L1..Ln and `repeat: K` pages the steps (1,0) .. (n,0), (1,1) .. (n,K):
level from 1, repeat from 0. Each step's job id is `incident:{id}:level:{l}:repeat:{r}`.
After the last step has waited its level's `escalate_after`, one more timer marks the
escalation exhausted (`incident:{id}:exhausted`); the incident stays triggered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from oncall.directory import Directory, Policy, Target
from oncall.schedules import Override, on_call


@dataclass(frozen=True, order=True)
class Step:
    """A pending escalation timer. `level` past the last level means: mark exhausted."""

    level: int
    repeat: int

    def is_exhaustion(self, policy: Policy) -> bool:
        return self.level > len(policy.levels)


FIRST_STEP = Step(1, 0)


def job_id(incident_id: int, step: Step, policy: Policy | None) -> str:
    """Return the fixed APScheduler job id of an incident's step."""
    if policy is not None and step.is_exhaustion(policy):
        return f"incident:{incident_id}:exhausted"
    return f"incident:{incident_id}:level:{step.level}:repeat:{step.repeat}"


def exhaustion_step(policy: Policy) -> Step:
    return Step(len(policy.levels) + 1, policy.repeat)


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
    return [Step(level, repeat) for repeat in range(policy.repeat + 1)
            for level in range(1, len(policy.levels) + 1)]


def recipients(targets: Sequence[Target], directory: Directory,
               overrides: Mapping[str, Sequence[Override]],
               at: datetime) -> tuple[list[str], list[str]]:
    """Return (users paged, schedules with nobody on call) for a level's targets at `at`.

    Users come in target order, each once; `overrides` holds each schedule's overrides.
    """
    paged: list[str] = []
    nobody: list[str] = []
    for target in targets:
        name: str | None = target.name
        if target.kind == "schedule":
            schedule = directory.schedules.get(target.name)
            name = (on_call(schedule, overrides.get(target.name, ()), at)
                    if schedule is not None else None)
            if name is None:
                nobody.append(target.name)
        if name is not None and name in directory.users and name not in paged:
            paged.append(name)
    return paged, nobody
