"""What a responder's action on an incident means: its input checked and its effect decided
from the incident's state and policy. Pure; the store carries the decisions out.

Escalating or reassigning an acknowledged incident triggers it again, as PagerDuty does:
whoever is paged now must be able to acknowledge it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oncall.directory.model import Directory, Policy
from oncall.errors import Conflict, InvalidInput
from oncall.escalation.policies import USER_POLICY, user_policy
from oncall.escalation.steps import FIRST_STEP, Step
from oncall.incidents.lifecycle import ACKNOWLEDGED, RESOLVED, TRIGGERED
from oncall.ingest.text import multiline

MAX_NOTE_BYTES = 4096  # UTF-8 bytes of a note's text, after cleaning
POLICY_TARGET = "policy:"


@dataclass(frozen=True)
class Restart:
    """Fire `step` of `policy` now, the incident triggered again, its escalation going on
    from there; `event` is the timeline entry that says why."""

    step: Step
    policy: str
    event: str
    detail: dict[str, Any]


def note_text(value: Any) -> str:
    """Return a note's text with control characters cleaned as alert text is; raises
    InvalidInput naming `text` when it is not a string, empty, or over MAX_NOTE_BYTES."""
    if not isinstance(value, str):
        raise InvalidInput("expected the note's text as a string", "text")
    text = multiline(value)
    if not text.strip():
        raise InvalidInput("a note needs some text", "text")
    if len(text.encode()) > MAX_NOTE_BYTES:
        raise InvalidInput(f"a note is at most {MAX_NOTE_BYTES} bytes of UTF-8", "text")
    return text


def level_param(value: Any) -> int | None:
    """Return the `level` asked for (None: not given); raises InvalidInput naming `level`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("expected a level number", "level")
    return value


def user_param(value: Any, directory: Directory) -> str:
    """Return the name of a user of the directory; raises InvalidInput naming `user`."""
    if not isinstance(value, str) or value not in directory.users:
        raise InvalidInput("expected the name of a user of the directory", "user")
    return value


def reassign_target(value: Any, directory: Directory) -> str:
    """Return the policy an incident reassigned to `value` follows: `user:NAME` (that user
    as its only level) or `policy:NAME` (a policy of the directory); raises InvalidInput
    naming `to`."""
    if isinstance(value, str):
        kind, _, name = value.partition(":")
        if f"{kind}:" == USER_POLICY and name in directory.users:
            return user_policy(name)
        if f"{kind}:" == POLICY_TARGET and name in directory.policies:
            return name
    raise InvalidInput("expected user:NAME or policy:NAME of the directory", "to")


def _not_resolved(incident_id: int, status: str) -> None:
    if status == RESOLVED:
        raise Conflict(f"incident {incident_id} is resolved", "status")


def unacknowledge(incident_id: int, status: str, policy: str | None) -> Restart | None:
    """Return the restart that puts an acknowledged incident back to triggered at level 1;
    None for a triggered one (nothing to do). Raises Conflict when it is resolved."""
    _not_resolved(incident_id, status)
    if status == TRIGGERED:
        return None
    return Restart(FIRST_STEP, policy or "", "incident.unacknowledged", {})


def escalate(
    incident_id: int,
    status: str,
    policy: Policy | None,
    pending: Step,
    level: int | None,
) -> Restart:
    """Return the step an escalation by hand fires now: `level` of the pass under way, or
    by default the step after the one last fired (`pending`, the incident's next step).

    Raises Conflict when the incident is resolved, its policy is gone, or (without a level)
    its escalation is exhausted; InvalidInput naming `level` for a level the policy lacks.
    """
    _not_resolved(incident_id, status)
    if policy is None:
        raise Conflict(f"incident {incident_id}'s policy no longer exists; reassign it", "policy")
    count = len(policy.levels)
    if level is not None and not 1 <= level <= count:
        raise InvalidInput(f"policy {policy.name!r} has levels 1 to {count}", "level")
    if level is None:
        if pending.level > count or pending.repeat > policy.repeat:
            raise Conflict("the escalation is exhausted: name a level", "level")
        step = pending
    else:
        step = Step(level, min(pending.repeat, policy.repeat))
    detail = {"level": step.level, "repeat": step.repeat, "retriggered": status == ACKNOWLEDGED}
    return Restart(step, policy.name, "incident.escalated", detail)


def reassign(incident_id: int, status: str, current: str | None, target: str) -> Restart | None:
    """Return the restart that hands the incident to `target` (a policy name, `user:NAME`
    for one user) at its level 1; None when a triggered incident already follows it.
    Raises Conflict when the incident is resolved."""
    _not_resolved(incident_id, status)
    if status == TRIGGERED and current == target:
        return None
    detail = {"from": current, "to": target, "retriggered": status == ACKNOWLEDGED}
    return Restart(FIRST_STEP, target, "incident.reassigned", detail)


# Entries after which a responder added before is paged again when added again: the
# incident was triggered anew, so its earlier pages are over.
RETRIGGERS = ("incident.unacknowledged", "incident.reassigned", "incident.escalated")


def add_responder(incident_id: int, status: str, user: str, earlier: list[Any]) -> bool:
    """Return whether adding `user` as a responder pages them: False when they were added
    since the incident was last triggered again (`earlier`: its responder and re-trigger
    timeline entries, oldest first). Raises Conflict unless the incident is triggered
    (an acknowledged incident's pages are not sent)."""
    _not_resolved(incident_id, status)
    if status != TRIGGERED:
        raise Conflict(
            f"incident {incident_id} is {status}: unacknowledge or reassign it", "status"
        )
    for event in reversed(earlier):
        if event.type in RETRIGGERS:
            return True
        if event.type == "incident.responder_added" and event.detail.get("user") == user:
            return False
    return True
