"""Escalation state in the database: the truth Redis timers are rebuilt from.

Each function runs inside the one transaction `Database.run` hands it. What a step needs
from other domains (who is on call, the pages it writes) comes through the `Rota` and
`Pager` it is given, in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from oncall.db.fastpath import Prepared
from oncall.db.models import escalation_jobs, incident_events, incidents
from oncall.directory.model import Directory, Policy, Target, User
from oncall.escalation.policies import policy_named
from oncall.escalation.steps import (
    FIRST_STEP,
    Step,
    following,
    job_id,
    pointer,
    step_job,
    under,
)
from oncall.escalation.targets import recipients, schedules_named
from oncall.incidents.lifecycle import TRIGGERED, Opened
from oncall.incidents.timeline import SYSTEM_ACTOR, entry
from oncall.notify.outbox import Claimed
from oncall.routing.routes import choose_route
from oncall.schedules.overrides import Override
from oncall.timers.followups import OVERDUE_AFTER, Followups, JobSpec

log = logging.getLogger(__name__)


class Rota(Protocol):
    """Who is on call: the schedules' overrides at an instant."""

    def overrides_in(
        self, conn: Connection, schedules: Iterable[str], at: datetime
    ) -> Mapping[str, Sequence[Override]]: ...


class Pager(Protocol):
    """The outbox: writes a level's pages, their first attempts claimed."""

    def write_pages_in(
        self,
        conn: Connection,
        incident_id: int,
        level: int,
        repeat: int,
        users: Sequence[User],
        now: datetime,
        opened: Opened | None,
    ) -> list[Claimed]: ...


@dataclass(frozen=True)
class FireResult:
    fired: bool  # False: the job was stale (acknowledged, resolved, superseded) and did nothing
    followups: Followups = field(default_factory=Followups)
    reason: str = ""
    due_at: datetime | None = None  # when the fired step was due


_insert_event = Prepared(insert(incident_events))
_find_step = Prepared(
    select(
        incidents.c.status,
        incidents.c.policy,
        incidents.c.next_level,
        incidents.c.next_repeat,
        incidents.c.next_due_at,
        incidents.c.urgency,
    ).where(incidents.c.id == bindparam("incident_id"))
)
_find_labels = Prepared(
    select(incidents.c.labels).where(incidents.c.id == bindparam("incident_id"))
)
_set_policy = Prepared(
    update(incidents)
    .where(incidents.c.id == bindparam("incident_id"))
    .values(policy=bindparam("policy"))
)
_claim_step = Prepared(
    update(incidents)
    .where(
        incidents.c.id == bindparam("incident_id"),
        incidents.c.status == TRIGGERED,
        incidents.c.next_level == bindparam("level"),
        incidents.c.next_repeat == bindparam("repeat"),
        incidents.c.next_due_at.is_not(None),
    )
    .values(
        next_level=bindparam("next_level"),
        next_repeat=bindparam("next_repeat"),
        next_due_at=bindparam("next_due_at"),
        updated_at=bindparam("now"),
    )
)
_update_job = update(escalation_jobs).where(escalation_jobs.c.id == bindparam("job_id"))
_insert_job = Prepared(insert(escalation_jobs))
_mark_job_fired = Prepared(
    _update_job.values(
        state="fired",
        fired_at=bindparam("now"),
        updated_at=bindparam("now"),
        attempts=escalation_jobs.c.attempts + 1,
    )
)
_TIMER_COLUMNS = (
    "incident_id",
    "level",
    "repeat",
    "due_at",
    "state",
    "attempts",
    "last_error",
    "fired_at",
    "updated_at",
)
_reset_job = Prepared(_update_job.values({name: bindparam(name) for name in _TIMER_COLUMNS}))
_point_at = Prepared(
    update(incidents)
    .where(incidents.c.id == bindparam("incident_id"))
    .values(
        next_level=bindparam("level"),
        next_repeat=bindparam("repeat"),
        next_due_at=bindparam("due_at"),
        updated_at=bindparam("now"),
    )
)
# One statement that cancels and names the cancelled (UPDATE ... RETURNING: SQLite 3.35+,
# PostgreSQL), instead of a SELECT and an UPDATE.
_cancel_jobs = Prepared(
    update(escalation_jobs)
    .where(
        escalation_jobs.c.incident_id == bindparam("of_incident"),
        escalation_jobs.c.state.in_(("scheduled", "failed")),
    )
    .values(state="cancelled", updated_at=bindparam("now"))
    .returning(escalation_jobs.c.id)
)


def _record_timer(
    conn: Connection, job: JobSpec, step: Step, incident_id: int, now: datetime, new: bool = False
) -> None:
    """Write the timer's job row: reset it if it exists; `new` says it cannot yet."""
    values = {
        "job_id": job.job_id,
        "incident_id": incident_id,
        "level": step.level,
        "repeat": step.repeat,
        "due_at": job.run_date,
        "state": "scheduled",
        "attempts": 0,
        "last_error": None,
        "fired_at": None,
        "updated_at": now,
    }
    if new or not _reset_job.execute(conn, values).rowcount:
        values["id"] = values.pop("job_id")
        _insert_job.execute(conn, {**values, "created_at": now})


def first_timer(conn: Connection, incident_id: int, policy: Policy, now: datetime) -> JobSpec:
    """Point a new incident back at its first step, due now, record that as a timer and
    return its job: the way back when paging the first level with the incident failed (its
    INSERT had already pointed it past that step)."""
    step = FIRST_STEP
    _point_at.execute(
        conn,
        {
            "incident_id": incident_id,
            "level": step.level,
            "repeat": step.repeat,
            "due_at": now,
            "now": now,
        },
    )
    job = step_job(incident_id, step, policy, now)
    _record_timer(conn, job, step, incident_id, now)
    return job


def _record_fired(
    conn: Connection,
    this_job: str,
    incident_id: int,
    step: Step,
    due_at: datetime,
    now: datetime,
    new: bool = False,
) -> None:
    """Mark a step's job fired; the first step, paged with its incident's opening, has no
    row yet and gets one (`new` says so before asking)."""
    if new or not _mark_job_fired.execute(conn, {"job_id": this_job, "now": now}).rowcount:
        _insert_job.execute(
            conn,
            {
                "id": this_job,
                "incident_id": incident_id,
                "level": step.level,
                "repeat": step.repeat,
                "due_at": due_at,
                "state": "fired",
                "attempts": 1,
                "last_error": None,
                "fired_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )


def stop_escalation(conn: Connection, incident_id: int, now: datetime) -> list[str]:
    """Cancel the incident's pending and failed steps; return the job ids to remove from
    Redis. The UPDATE that closed the incident clears its pointer to the next step
    (`next_due_at`), so the reconciler stops expecting one."""
    return sorted(_cancel_jobs.execute(conn, {"of_incident": incident_id, "now": now}).scalars())


def fire_step(
    conn: Connection,
    incident_id: int,
    step: Step,
    directory: Directory,
    now: datetime,
    rota: Rota,
    pager: Pager,
    opened: Opened | None = None,
) -> FireResult:
    """Run one escalation step if it is still the incident's next step; else do nothing.

    The step is claimed with a conditional UPDATE (incident triggered, level and repeat
    match, step still pending), so a job that runs after an acknowledgement, a duplicate
    job, or a stale job changes nothing. Returns the timer to schedule next, if any, and
    the pages claimed.
    `opened`: the incident, when this transaction inserted it (it has no job rows yet, and
    points past this, its first step, already: see `first_pointer`).
    """
    if opened is None:
        row = _find_step.execute(conn, {"incident_id": incident_id}).first()
        if row is None:
            return FireResult(False, reason="incident not found")
        if row.status != TRIGGERED or row.next_due_at is None:
            return FireResult(False, reason=f"incident is {row.status}, nothing pending")
        if (row.next_level, row.next_repeat) != (step.level, step.repeat):
            return FireResult(False, reason="superseded by another step")
        if row.next_due_at > now:
            # Woken early (a job another deployment wrote under the same id, or one left
            # by an older due time): the database's due time decides; arm it again.
            policy = policy_named(directory, row.policy)
            job = step_job(incident_id, step, policy, row.next_due_at)
            return FireResult(False, Followups(jobs=[job]), reason="not due yet")
    else:
        row = opened.incident
    policy = policy_named(directory, row.policy)
    this_job = job_id(incident_id, step, policy)
    effective = step
    notes: list[dict[str, Any]] = []
    if opened is None:
        # The directory may have changed since this step was scheduled: an incident follows
        # its policy by name; one whose policy is gone takes its route's current policy.
        if policy is None:
            policy = _route_policy(conn, incident_id, directory)
            notes.append(
                entry(
                    incident_id,
                    now,
                    "escalation.rerouted",
                    SYSTEM_ACTOR,
                    {"reason": f"policy {row.policy!r} no longer exists", "policy": policy.name},
                )
            )
        effective = under(policy, step)
        if effective != step:
            notes.append(
                entry(
                    incident_id,
                    now,
                    "escalation.policy_changed",
                    SYSTEM_ACTOR,
                    {
                        "policy": policy.name,
                        "pending": [step.level, step.repeat],
                        "now": [effective.level, effective.repeat],
                    },
                )
            )
    next_step = following(policy, effective, now, row.urgency)
    if opened is None:
        next_level, next_repeat, next_due = pointer(effective, next_step)
        claimed = _claim_step.execute(
            conn,
            {
                "incident_id": incident_id,
                "level": step.level,
                "repeat": step.repeat,
                "next_level": next_level,
                "next_repeat": next_repeat,
                "next_due_at": next_due,
                "now": now,
            },
        ).rowcount
        if claimed != 1:
            return FireResult(False, reason="claimed by another run")
        due_at = row.next_due_at
    else:
        # Inserted by this transaction already pointing past this step (`first_pointer`):
        # the INSERT was the claim, and the step was due as the incident opened.
        due_at = row.created_at
    new = opened is not None
    _record_fired(conn, this_job, incident_id, step, due_at, now, new)
    if notes:
        assert policy is not None  # a vanished one was replaced above
        _insert_event.execute(conn, notes)
        if policy.name != row.policy:
            _set_policy.execute(conn, {"incident_id": incident_id, "policy": policy.name})
    step = effective

    if policy is None or step.is_exhaustion(policy):
        detail = (
            {"reason": f"policy {row.policy!r} no longer exists"}
            if policy is None
            else {"policy": policy.name, "levels": len(policy.levels), "repeats": policy.repeat}
        )
        _insert_event.execute(
            conn, entry(incident_id, now, "escalation.exhausted", SYSTEM_ACTOR, detail)
        )
        return FireResult(True, due_at=due_at)
    level = policy.levels[step.level - 1]
    paged = _resolve_targets(conn, incident_id, level.targets, directory, now, rota)
    _insert_event.execute(
        conn,
        entry(
            incident_id,
            now,
            "escalation.level",
            SYSTEM_ACTOR,
            {
                "level": step.level,
                "repeat": step.repeat,
                "targets": [str(t) for t in level.targets],
                "paged": paged,
                "policy": policy.name,
                "job_id": this_job,
            },
        ),
    )
    users = [directory.users[name] for name in paged]
    pages = pager.write_pages_in(conn, incident_id, step.level, step.repeat, users, now, opened)
    followups = Followups(pages=pages)
    if next_step is not None:  # None: a low-urgency incident pages this level only
        step_after, due = next_step
        job = step_job(incident_id, step_after, policy, due)
        _record_timer(conn, job, step_after, incident_id, now, new)
        followups.jobs.append(job)
    return FireResult(True, followups, due_at=due_at)


def _route_policy(conn: Connection, incident_id: int, directory: Directory) -> Policy:
    """Return the current policy of the route the incident's labels choose now."""
    labels = _find_labels.execute(conn, {"incident_id": incident_id}).scalar_one()
    return directory.policies[choose_route(directory.routes, labels).policy]


def _resolve_targets(
    conn: Connection,
    incident_id: int,
    targets: Sequence[Target],
    directory: Directory,
    now: datetime,
    rota: Rota,
) -> list[str]:
    """Return the users a level pages now (schedules resolve to whoever is on call, overrides
    included); a schedule with nobody on call is recorded in the timeline."""
    overrides = rota.overrides_in(conn, schedules_named(targets), now)
    paged, nobody = recipients(targets, directory, overrides, now)
    if nobody:
        _insert_event.execute(
            conn,
            [
                entry(
                    incident_id,
                    now,
                    "escalation.nobody_on_call",
                    SYSTEM_ACTOR,
                    {"schedule": schedule},
                )
                for schedule in nobody
            ],
        )
    return paged


def mark_failed(
    conn: Connection, incident_id: int, step: Step, attempts: int, error: str, now: datetime
) -> None:
    """Record that a step failed after its retries; the reconciler will try it again."""
    conn.execute(
        update(escalation_jobs)
        .where(
            escalation_jobs.c.incident_id == incident_id,
            escalation_jobs.c.level == step.level,
            escalation_jobs.c.repeat == step.repeat,
            escalation_jobs.c.state.in_(("scheduled", "failed")),
        )
        .values(
            state="failed",
            attempts=escalation_jobs.c.attempts + attempts,
            last_error=error[:2000],
            updated_at=now,
        )
    )
    _insert_event.execute(
        conn,
        entry(
            incident_id,
            now,
            "escalation.failed",
            SYSTEM_ACTOR,
            {
                "level": step.level,
                "repeat": step.repeat,
                "attempts": attempts,
                "error": error[:500],
            },
        ),
    )


Pending = tuple[int, str | None, int, int, datetime]  # incident, policy, level, repeat, due


def pending_steps(
    conn: Connection, due_by: datetime | None = None, limit: int | None = None
) -> list[Pending]:
    """Return (incident id, policy, level, repeat, due) of the pending step of every
    triggered incident (what Redis must hold), or of those due by `due_by`, soonest first,
    at most `limit` (what the sweep fires while Redis is down)."""
    query = select(
        incidents.c.id,
        incidents.c.policy,
        incidents.c.next_level,
        incidents.c.next_repeat,
        incidents.c.next_due_at,
    ).where(incidents.c.status == TRIGGERED, incidents.c.next_due_at.is_not(None))
    if due_by is not None:
        query = query.where(incidents.c.next_due_at <= due_by).order_by(incidents.c.next_due_at)
    rows = conn.execute(query.limit(limit))
    return [(i, policy, level, repeat, due) for i, policy, level, repeat, due in rows]


def queue_stats(conn: Connection, now: datetime) -> dict[str, int]:
    """Return the count of overdue steps (due over OVERDUE_AFTER ago, not fired) and of
    failed steps."""
    overdue = conn.execute(
        select(func.count())
        .select_from(incidents)
        .where(incidents.c.status == TRIGGERED, incidents.c.next_due_at < now - OVERDUE_AFTER)
    ).scalar_one()
    failed = conn.execute(
        select(func.count()).select_from(escalation_jobs).where(escalation_jobs.c.state == "failed")
    ).scalar_one()
    return {"overdue_steps": overdue, "failed_steps": failed}
