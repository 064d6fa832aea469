"""The pure decisions behind a responder's actions (oncall.incidents.actions) and the
one-user policy of a reassigned incident (oncall.escalation.policies)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from oncall.directory.parse import parse_directory
from oncall.errors import Conflict, InvalidInput
from oncall.escalation import policies, steps
from oncall.escalation.steps import Step
from oncall.incidents import actions
from tests.support.factories import T0, fast_directory

DIRECTORY = parse_directory(fast_directory(levels=("2s", "3s"), repeat=1), {})
FAST = DIRECTORY.policies["fast"]


@pytest.mark.parametrize(
    ("status", "pending", "level", "expected"),
    [
        ("triggered", Step(2, 0), None, Step(2, 0)),  # default: the step after the last fired
        ("triggered", Step(1, 1), None, Step(1, 1)),  # ... into the next pass
        ("acknowledged", Step(2, 0), None, Step(2, 0)),  # acknowledged: the same, triggered
        ("triggered", Step(2, 0), 1, Step(1, 0)),  # a named level of the pass under way
        ("triggered", Step(3, 1), 2, Step(2, 1)),  # exhausted: the last pass
    ],
)
def test_escalate_fires_the_step_asked_for(status, pending, level, expected):
    plan = actions.escalate(1, status, FAST, pending, level)
    assert plan.step == expected and plan.policy == "fast"
    assert plan.detail["retriggered"] is (status == "acknowledged")


def test_escalate_refuses_what_does_not_apply():
    with pytest.raises(InvalidInput) as bad:
        actions.escalate(1, "triggered", FAST, Step(1, 0), 3)
    assert bad.value.field == "level"
    with pytest.raises(Conflict):  # exhausted, no level named
        actions.escalate(1, "triggered", FAST, Step(3, 1), None)
    with pytest.raises(Conflict):
        actions.escalate(1, "resolved", FAST, Step(1, 0), 1)
    with pytest.raises(Conflict):  # the policy left the directory
        actions.escalate(1, "triggered", None, Step(1, 0), 1)


def test_unacknowledge_restarts_at_level_1_only_when_acknowledged():
    plan = actions.unacknowledge(1, "acknowledged", "fast")
    assert plan is not None and plan.step == steps.FIRST_STEP
    assert actions.unacknowledge(1, "triggered", "fast") is None
    with pytest.raises(Conflict):
        actions.unacknowledge(1, "resolved", "fast")


def test_reassign_targets_and_their_meaning():
    assert actions.reassign_target("user:bob", DIRECTORY) == "user:bob"
    assert actions.reassign_target("policy:fast", DIRECTORY) == "fast"
    for bad in ("user:zed", "policy:user:bob", "fast", "schedule:x", None):
        with pytest.raises(InvalidInput):
            actions.reassign_target(bad, DIRECTORY)
    assert actions.reassign(1, "triggered", "fast", "fast") is None
    plan = actions.reassign(1, "acknowledged", "fast", "fast")
    assert plan is not None and plan.step == steps.FIRST_STEP


def test_a_user_policy_pages_that_user_once_and_is_exhausted_at_once():
    policy = policies.policy_named(DIRECTORY, "user:bob")
    assert policy is not None
    assert [str(t) for level in policy.levels for t in level.targets] == ["user:bob"]
    assert steps.following(policy, steps.FIRST_STEP, T0) == (steps.exhaustion_step(policy), T0)
    assert policies.policy_named(DIRECTORY, "fast") is FAST
    assert policies.policy_named(DIRECTORY, "gone") is None


def _event(type_: str, user: str = "") -> SimpleNamespace:
    return SimpleNamespace(type=type_, detail={"user": user} if user else {})


def test_a_responder_is_paged_again_only_after_the_incident_was_triggered_again():
    added = _event("incident.responder_added", "carol")
    assert actions.add_responder(1, "triggered", "carol", []) is True
    assert actions.add_responder(1, "triggered", "carol", [added]) is False
    assert actions.add_responder(1, "triggered", "dana", [added]) is True
    assert (
        actions.add_responder(1, "triggered", "carol", [added, _event("incident.unacknowledged")])
        is True
    )
    with pytest.raises(Conflict):
        actions.add_responder(1, "acknowledged", "carol", [])


def test_note_text_is_cleaned_and_bounded():
    assert actions.note_text("a\r\nb\x00") == "a\nb\ufffd"
    assert len(actions.note_text("x" * actions.MAX_NOTE_BYTES)) == actions.MAX_NOTE_BYTES
    with pytest.raises(InvalidInput):
        actions.note_text("x" * (actions.MAX_NOTE_BYTES + 1))
