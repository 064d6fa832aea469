"""The escalation sequence as pure functions of the policy and `now`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oncall.directory.model import Level, Policy, Target
from oncall.escalation import steps as escalation
from oncall.escalation.steps import FIRST_STEP, Step
from oncall.notify.retry import backoff
from tests.support.factories import T0


def policy(*minutes: int, repeat: int = 0) -> Policy:
    return Policy(
        "p", repeat, tuple(Level((Target("user", "alice"),), timedelta(minutes=m)) for m in minutes)
    )


def walk(p: Policy) -> list[tuple[Step, timedelta]]:
    """Fire every step at its due time; return (step, offset from T0) in order."""
    out, step, now = [], FIRST_STEP, T0
    while True:
        out.append((step, now - T0))
        following = escalation.after(p, step, now)
        if following is None:
            return out
        step, now = following


def test_levels_then_repeats_then_exhaustion():
    steps = walk(policy(5, 10, repeat=1))
    assert steps == [
        (Step(1, 0), timedelta(0)),
        (Step(2, 0), timedelta(minutes=5)),
        (Step(1, 1), timedelta(minutes=15)),
        (Step(2, 1), timedelta(minutes=20)),
        (Step(3, 1), timedelta(minutes=30)),
    ]
    assert steps[-1][0].is_exhaustion(policy(5, 10, repeat=1))


def test_the_next_step_is_due_after_the_fired_levels_wait_even_when_late():
    late = T0 + timedelta(minutes=7)  # fired 7 minutes late, after an outage
    assert escalation.after(policy(5, 10), FIRST_STEP, late) == (
        Step(2, 0),
        late + timedelta(minutes=5),
    )


def test_job_ids_follow_the_fixed_pattern():
    p = policy(5, 10)
    assert escalation.job_id(7, Step(2, 0), p) == "incident:7:level:2:repeat:0"
    assert escalation.job_id(7, Step(3, 0), p) == "incident:7:exhausted"
    assert [str(s) for s in escalation.all_steps(policy(1, 1, repeat=1))] == [
        "Step(level=1, repeat=0)",
        "Step(level=2, repeat=0)",
        "Step(level=1, repeat=1)",
        "Step(level=2, repeat=1)",
    ]


@pytest.mark.parametrize(
    ("failures", "base", "expected"),
    [
        (1, 5, 5),
        (2, 5, 10),
        (3, 5, 20),  # escalation: 5, 10, 20 s
        (1, 2, 2),
        (4, 2, 16),  # notification: 2 .. 16 s
    ],
)
def test_backoff_doubles_from_its_base(failures, base, expected):
    assert backoff(failures, timedelta(seconds=base)) == timedelta(seconds=expected)


def test_backoff_needs_a_failure():
    with pytest.raises(ValueError):
        backoff(0, timedelta(seconds=5))
