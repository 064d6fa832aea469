"""Escalation state in the database: the truth that Redis timers are rebuilt from.

Like `store`, every function runs inside one transaction handed in by `Database.run`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from oncall import escalation
from oncall.clock import from_micros, to_micros
from oncall.directory import Directory, Policy, Target
from oncall.escalation import Step
from oncall.followups import Followups, Timer
from oncall.models import escalation_jobs, incidents
from oncall.prepared import Prepared
from oncall.retry import OVERDUE_AFTER
from oncall.store_notify import Opened, create_pages
from oncall.store_schedules import overrides_between
from oncall.timeline import SYSTEM_ACTOR, add_event

log = logging.getLogger(__name__)
_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class FireResult:
    fired: bool  # False: the job was stale (acknowledged, resolved, superseded) and did nothing
    followups: Followups
    reason: str = ""
    due_at: datetime | None = None  # when the fired step was due



_find_step = Prepared(
    select(incidents.c.status, incidents.c.policy, incidents.c.next_level,
           incidents.c.next_repeat, incidents.c.next_due_at)
    .where(incidents.c.id == bindparam("incident_id")))
_claim_step = Prepared(
    update(incidents)
    .where(incidents.c.id == bindparam("incident_id"), incidents.c.status == "triggered",
           incidents.c.next_level == bindparam("level"),
           incidents.c.next_repeat == bindparam("repeat"),
           incidents.c.next_due_at.is_not(None))
    .values(next_level=bindparam("next_level"), next_repeat=bindparam("next_repeat"),
            next_due_at=bindparam("next_due_at"), updated_at=bindparam("now")))
_update_job = update(escalation_jobs).where(escalation_jobs.c.id == bindparam("job_id"))
_insert_job = Prepared(insert(escalation_jobs))
_mark_job_fired = Prepared(_update_job.values(
    state="fired", fired_at=bindparam("now"), updated_at=bindparam("now"),
    attempts=escalation_jobs.c.attempts + 1))
_TIMER_COLUMNS = ("incident_id", "level", "repeat", "due_at", "state", "attempts",
                  "last_error", "fired_at", "updated_at")
_reset_job = Prepared(_update_job.values({name: bindparam(name) for name in _TIMER_COLUMNS}))


def _record_timer(conn: Connection, timer: Timer, now: datetime, new: bool = False) -> None:
    """Write the timer's job row: reset it if it exists; `new` says it cannot yet."""
    values = {"job_id": timer.job_id, "incident_id": timer.incident_id, "level": timer.level,
              "repeat": timer.repeat, "due_at": timer.due_at, "state": "scheduled",
              "attempts": 0, "last_error": None, "fired_at": None, "updated_at": now}
    if new or not _reset_job.execute(conn, values).rowcount:
        values["id"] = values.pop("job_id")
        _insert_job.execute(conn, {**values, "created_at": now})


Pointer = tuple[int, int, datetime | None]  # an incident's next level, repeat and due time


def _following(policy: Policy | None, step: Step, now: datetime
               ) -> tuple[Step, datetime] | None:
    """Return the step after `step` fires at `now` and when it is due; None after
    exhaustion or when the policy is gone."""
    return escalation.after(policy, step, now) if policy is not None else None


def _pointer(step: Step, following: tuple[Step, datetime] | None) -> Pointer:
    """Return where firing `step` leaves its incident: at the following step, or at `step`
    with nothing due."""
    if following is None:
        return step.level, step.repeat, None
    next_step, due = following
    return next_step.level, next_step.repeat, due


def first_pointer(policy: Policy | None, now: datetime) -> Pointer:
    """Return where firing the first step at `now` leaves a new incident. The opening
    INSERT writes it, so the step needs no claiming UPDATE (`fire_step` with `opened`)."""
    step = escalation.FIRST_STEP
    return _pointer(step, _following(policy, step, now))


_point_at = Prepared(update(incidents).where(incidents.c.id == bindparam("incident_id"))
                     .values(next_level=bindparam("level"), next_repeat=bindparam("repeat"),
                             next_due_at=bindparam("due_at"), updated_at=bindparam("now")))


def first_timer(conn: Connection, incident_id: int, policy: Policy, now: datetime) -> Timer:
    """Point a new incident back at its first step, due now, record that as a timer and
    return it: the way back when paging the first level with the incident failed (its
    INSERT had already pointed it past that step)."""
    step = escalation.FIRST_STEP
    _point_at.execute(conn, {"incident_id": incident_id, "level": step.level,
                             "repeat": step.repeat, "due_at": now, "now": now})
    timer = Timer(escalation.job_id(incident_id, step, policy), incident_id, step.level,
                  step.repeat, now)
    _record_timer(conn, timer, now)
    return timer


def _record_fired(conn: Connection, job_id: str, incident_id: int, step: Step,
                  due_at: datetime, now: datetime, new: bool = False) -> None:
    """Mark a step's job fired; the first step, paged with its incident's opening, has no
    row yet and gets one (`new` says so before asking)."""
    if new or not _mark_job_fired.execute(conn, {"job_id": job_id, "now": now}).rowcount:
        _insert_job.execute(conn, {
            "id": job_id, "incident_id": incident_id, "level": step.level,
            "repeat": step.repeat, "due_at": due_at, "state": "fired", "attempts": 1,
            "last_error": None, "fired_at": now, "created_at": now, "updated_at": now})


# One statement that cancels and names the cancelled (UPDATE ... RETURNING: SQLite 3.35+,
# PostgreSQL), instead of a SELECT and an UPDATE.
_cancel_jobs = Prepared(
    update(escalation_jobs)
    .where(escalation_jobs.c.incident_id == bindparam("of_incident"),
           escalation_jobs.c.state.in_(("scheduled", "failed")))
    .values(state="cancelled", updated_at=bindparam("now"))
    .returning(escalation_jobs.c.id))


def stop_escalation(conn: Connection, incident_id: int, now: datetime) -> list[str]:
    """Cancel the incident's pending and failed steps; return the job ids to remove from
    Redis. The UPDATE that closed the incident clears its pointer to the next step
    (`next_due_at`), so the reconciler stops expecting one."""
    return sorted(_cancel_jobs.execute(conn, {"of_incident": incident_id,
                                              "now": now}).scalars())


def fire_step(conn: Connection, incident_id: int, step: Step, directory: Directory,
              now: datetime, opened: Opened | None = None) -> FireResult:
    """Run one escalation step if it is still the incident's next step; else do nothing.

    The step is claimed with a conditional UPDATE (incident triggered, level and repeat
    match, step still pending), so a job that runs after an acknowledgement, a duplicate
    job, or a stale job changes nothing. Returns the timer to schedule next, if any.
    `opened`: the incident, when this transaction inserted it (it has no job rows yet, and
    points past this, its first step, already: see `first_pointer`).
    """
    if opened is None:
        row = _find_step.execute(conn, {"incident_id": incident_id}).first()
        if row is None:
            return FireResult(False, Followups(), "incident not found")
        if row.status != "triggered" or row.next_due_at is None:
            return FireResult(False, Followups(), f"incident is {row.status}, nothing pending")
        if (row.next_level, row.next_repeat) != (step.level, step.repeat):
            return FireResult(False, Followups(), "superseded by another step")
    else:
        row = opened.incident
    policy = directory.policies.get(row.policy or "")
    this_job = escalation.job_id(incident_id, step, policy)
    following = _following(policy, step, now)
    next_step, next_due = following if following is not None else (None, None)
    if opened is None:
        next_level, next_repeat, _ = _pointer(step, following)
        claimed = _claim_step.execute(conn, {
            "incident_id": incident_id, "level": step.level, "repeat": step.repeat,
            "next_level": next_level, "next_repeat": next_repeat,
            "next_due_at": next_due, "now": now}).rowcount
        if claimed != 1:
            return FireResult(False, Followups(), "claimed by another run")
        due_at = row.next_due_at
    else:
        # Inserted by this transaction already pointing past this step (`first_pointer`):
        # the INSERT was the claim, and the step was due as the incident opened.
        due_at = row.created_at
    new = opened is not None
    _record_fired(conn, this_job, incident_id, step, due_at, now, new)

    if policy is None:
        add_event(conn, incident_id, now, "escalation.exhausted", SYSTEM_ACTOR,
               {"reason": f"policy {row.policy!r} no longer exists"})
        return FireResult(True, Followups(), due_at=due_at)
    if step.is_exhaustion(policy):
        add_event(conn, incident_id, now, "escalation.exhausted", SYSTEM_ACTOR,
               {"policy": policy.name, "levels": len(policy.levels),
                "repeats": policy.repeat})
        return FireResult(True, Followups(), due_at=due_at)
    level = policy.levels[step.level - 1]
    targets = [str(t) for t in level.targets]
    paged = resolve_targets(conn, incident_id, level.targets, directory, now)
    add_event(conn, incident_id, now, "escalation.level", SYSTEM_ACTOR,
              {"level": step.level, "repeat": step.repeat, "targets": targets,
               "paged": paged, "policy": policy.name, "job_id": this_job})
    users = [directory.users[name] for name in paged]
    deliveries = create_pages(conn, incident_id, step.level, step.repeat, users, now, opened)
    assert next_step is not None and next_due is not None
    timer = Timer(escalation.job_id(incident_id, next_step, policy), incident_id,
                  next_step.level, next_step.repeat, next_due)
    _record_timer(conn, timer, now, new)
    return FireResult(True, Followups(timers=[timer], deliveries=deliveries),
                      due_at=due_at)


def resolve_targets(conn: Connection, incident_id: int, targets: Sequence[Target],
                    directory: Directory, now: datetime) -> list[str]:
    """Return the users a level pages now (schedules resolve to whoever is on call, overrides
    included); a schedule with nobody on call is recorded in the timeline."""
    overrides = {t.name: overrides_between(conn, t.name, now, now + _INSTANT)
                 for t in targets if t.kind == "schedule"}
    paged, nobody = escalation.recipients(targets, directory, overrides, now)
    for schedule in nobody:
        add_event(conn, incident_id, now, "escalation.nobody_on_call", SYSTEM_ACTOR,
                  {"schedule": schedule})
    return paged


def mark_failed(conn: Connection, incident_id: int, step: Step, attempts: int, error: str,
                now: datetime) -> None:
    """Record that a step failed after its retries; the reconciler will try it again."""
    conn.execute(update(escalation_jobs).where(
        escalation_jobs.c.incident_id == incident_id, escalation_jobs.c.level == step.level,
        escalation_jobs.c.repeat == step.repeat,
        escalation_jobs.c.state.in_(("scheduled", "failed"))).values(
        state="failed", attempts=escalation_jobs.c.attempts + attempts, last_error=error[:2000],
        updated_at=now))
    add_event(conn, incident_id, now, "escalation.failed", SYSTEM_ACTOR,
           {"level": step.level, "repeat": step.repeat, "attempts": attempts,
            "error": error[:500]})


Pending = tuple[int, str | None, int, int, int]


def pending_steps(conn: Connection) -> list[Pending]:
    """Return (incident id, policy, level, repeat, due in microseconds since the epoch) of
    the pending step of every triggered incident: what Redis must hold.

    Plain values: a reconcile reads 100,000 of them, and built as timers (with datetimes)
    in the writer process they took a second to pickle and unpickle, the unpickling
    holding the service's GIL, and /health with it."""
    rows = conn.execute(select(incidents.c.id, incidents.c.policy, incidents.c.next_level,
                               incidents.c.next_repeat, incidents.c.next_due_at)
                        .where(incidents.c.status == "triggered",
                               incidents.c.next_due_at.is_not(None)))
    return [(incident_id, policy, level, repeat, to_micros(due))
            for incident_id, policy, level, repeat, due in rows]


def expected_steps(steps: Sequence[Pending], directory: Directory) -> dict[str, Pending]:
    """Return `pending_steps` by the job id each must have in Redis under `directory`."""
    return {_step_job_id(step, directory): step for step in steps}


def timers_for(steps: Sequence[Pending], directory: Directory) -> list[Timer]:
    """Return the timers of `pending_steps`, with their job ids under `directory`."""
    timers = []
    for step in steps:
        incident_id, _, level, repeat, due = step
        timers.append(Timer(_step_job_id(step, directory), incident_id, level, repeat,
                            from_micros(due)))
    return timers


def _step_job_id(step: Pending, directory: Directory) -> str:
    incident_id, policy_name, level, repeat, _ = step
    return escalation.job_id(incident_id, Step(level, repeat),
                             directory.policies.get(policy_name or ""))


def queue_stats(conn: Connection, now: datetime) -> dict[str, int]:
    """Return the count of overdue steps (due over 30 s ago, not fired) and failed steps."""
    overdue = conn.execute(select(func.count()).select_from(incidents).where(
        incidents.c.status == "triggered", incidents.c.next_due_at < now - OVERDUE_AFTER)
    ).scalar_one()
    failed = conn.execute(select(func.count()).select_from(escalation_jobs).where(
        escalation_jobs.c.state == "failed")).scalar_one()
    return {"overdue_steps": overdue, "failed_steps": failed}
