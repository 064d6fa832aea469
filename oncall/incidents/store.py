"""Incidents in the database: reading them, acknowledging and resolving. Each function runs
inside the one transaction `Database.run` hands it.

What closing an incident means for other domains (its escalation stops, its unsent pages
are cancelled, the resolved messages go out) comes through the `Closing` it is given, in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, exists, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, Row

from oncall.db.fastpath import Prepared
from oncall.db.models import alerts, incident_events, incidents
from oncall.errors import Conflict, NotFound
from oncall.escalation.steps import Step
from oncall.incidents import actions, wakes
from oncall.incidents.lifecycle import ACKNOWLEDGED, RESOLVED, STATUSES, TRIGGERED
from oncall.incidents.timeline import SYSTEM_ACTOR, entry
from oncall.timers.followups import ESCALATION, Followups


class Closing(Protocol):
    """What follows an incident's acknowledgement or resolution, in its transaction."""

    def close_in(
        self, conn: Connection, incident_id: int, resolved: bool, now: datetime
    ) -> Followups: ...


class Pausing(Protocol):
    """What stopping an incident's paging means for other domains, in its transaction."""

    def pause_in(self, conn: Connection, incident_id: int, now: datetime) -> Followups: ...


class Acting(Protocol):
    """What an action by hand does to an incident's escalation and pages, in its
    transaction."""

    def restart_in(
        self, conn: Connection, incident_id: int, step: Step, now: datetime, replace: bool
    ) -> Followups: ...

    def page_responder_in(
        self, conn: Connection, incident_id: int, user: str, now: datetime
    ) -> Followups: ...


@dataclass
class ActionResult:
    row: Row[Any]
    changed: bool
    followups: Followups = field(default_factory=Followups)  # for Redis, after commit


_insert_event = Prepared(insert(incident_events))


LIKE_ESCAPE = "\\"


def _like_pattern(text: str) -> str:
    """Return a LIKE pattern matching `text` anywhere, its wildcards taken literally."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
    escaped = escaped.replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"


def search_condition(conn: Connection, text: str) -> ColumnElement[bool]:
    """Return the condition of an incident whose title or one of whose label values holds
    `text`, ignoring case (SQLite: ASCII letters only).

    Label values are read one by one (SQLite's `json_each`, PostgreSQL's `jsonb_each_text`)
    rather than searched in the JSON text: the label names, the quotes and the escapes of
    the JSON text (a `"` or a non-ASCII letter written `\\u00e9`) are not matched."""
    pattern = _like_pattern(text)
    each = func.jsonb_each_text if conn.dialect.name == "postgresql" else func.json_each
    values = each(incidents.c.labels).table_valued("value")
    in_labels = exists(
        select(literal(1))
        .select_from(values)
        .where(values.c.value.ilike(pattern, escape=LIKE_ESCAPE))
    )
    return or_(incidents.c.title.ilike(pattern, escape=LIKE_ESCAPE), in_labels)


def list_incidents(
    conn: Connection,
    statuses: Sequence[str],
    limit: int,
    before_id: int | None,
    search: str | None = None,
) -> list[Row[Any]]:
    """Return up to `limit` incidents, newest first, with id below `before_id` when given,
    only those `search` finds (`search_condition`) when given."""
    query = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if statuses:
        query = query.where(incidents.c.status.in_(list(statuses)))
    if before_id is not None:
        query = query.where(incidents.c.id < before_id)
    if search:
        query = query.where(search_condition(conn, search))
    return list(conn.execute(query).all())


def count_incidents(conn: Connection, search: str | None = None) -> dict[str, int]:
    """Return how many incidents are in each status (every status, 0 when none), only
    those `search` finds when given."""
    query = select(incidents.c.status, func.count()).group_by(incidents.c.status)
    if search:
        query = query.where(search_condition(conn, search))
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in conn.execute(query):
        counts[status] = count
    return counts


def get_incident(conn: Connection, incident_id: int) -> Row[Any]:
    """Return the incident row; raises NotFound."""
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found", "id")
    return row


def _held(conn: Connection, incident_id: int) -> Row[Any]:
    """Return the incident row, locked until the transaction ends (PostgreSQL; SQLite has
    one writer at a time), so an action decides on the state it changes. Raises NotFound.

    The lock is the one an UPDATE of the row takes (FOR NO KEY UPDATE), as acknowledging
    does: a plain FOR UPDATE would also block the foreign-key checks of a sender recording
    a page's outcome (its timeline entry), which holds that page's row: a deadlock when the
    action then cancels the incident's pages."""
    row = conn.execute(
        select(incidents).where(incidents.c.id == incident_id).with_for_update(key_share=True)
    ).first()
    if row is None:
        raise NotFound(f"incident {incident_id} not found", "id")
    return row


def incident_details(
    conn: Connection, incident_id: int
) -> tuple[Row[Any], list[Row[Any]], list[Row[Any]]]:
    """Return the incident with its alerts and timeline (oldest first); raises NotFound."""
    row = get_incident(conn, incident_id)
    alert_rows = conn.execute(
        select(alerts).where(alerts.c.incident_id == incident_id).order_by(alerts.c.id)
    ).all()
    events = conn.execute(
        select(incident_events)
        .where(incident_events.c.incident_id == incident_id)
        .order_by(incident_events.c.id)
    ).all()
    return row, list(alert_rows), list(events)


def acknowledge(
    conn: Connection, incident_id: int, actor: str, now: datetime, closing: Closing
) -> ActionResult:
    """Acknowledge a triggered incident and stop its escalation.

    Raises NotFound, or Conflict when the incident is resolved. Acknowledging twice is a no-op.
    """
    row = get_incident(conn, incident_id)
    if row.status == RESOLVED:
        raise Conflict(f"incident {incident_id} is resolved", "status")
    if row.status == ACKNOWLEDGED:
        return ActionResult(row, False)
    claimed = conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id, incidents.c.status == TRIGGERED)
        .values(
            status=ACKNOWLEDGED,
            acknowledged_at=now,
            acknowledged_by=actor,
            updated_at=now,
            next_due_at=None,
        )
    ).rowcount
    if claimed != 1:  # changed under us between the read and the update
        return ActionResult(get_incident(conn, incident_id), False)
    _insert_event.execute(conn, entry(incident_id, now, "incident.acknowledged", actor, {}))
    followups = closing.close_in(conn, incident_id, False, now)
    return ActionResult(get_incident(conn, incident_id), True, followups)


def resolve(
    conn: Connection,
    incident_id: int,
    actor: str,
    now: datetime,
    closing: Closing,
    reason: str = "manual",
) -> ActionResult:
    """Resolve an incident (by hand, or by an event) and stop its escalation.

    Raises NotFound."""
    row = get_incident(conn, incident_id)
    if row.status == RESOLVED:
        return ActionResult(row, False)
    claimed = conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id, incidents.c.status != RESOLVED)
        .values(
            status=RESOLVED,
            resolved_at=now,
            resolved_by=actor,
            updated_at=now,
            next_due_at=None,
            snoozed_until=None,
            ack_timeout_at=None,
        )
    ).rowcount
    if claimed != 1:
        return ActionResult(get_incident(conn, incident_id), False)
    _insert_event.execute(
        conn, entry(incident_id, now, "incident.resolved", actor, {"reason": reason})
    )
    followups = closing.close_in(conn, incident_id, True, now)
    return ActionResult(get_incident(conn, incident_id), True, followups)


def add_note(
    conn: Connection, incident_id: int, actor: str, text: str, now: datetime
) -> ActionResult:
    """Add a note to the incident's timeline, whatever its state. Raises NotFound."""
    row = get_incident(conn, incident_id)
    _insert_event.execute(conn, entry(incident_id, now, "incident.note", actor, {"text": text}))
    return ActionResult(row, True)


def restart(
    conn: Connection,
    incident_id: int,
    actor: str,
    now: datetime,
    decide: Callable[[Row[Any]], actions.Restart | None],
    acting: Acting,
) -> ActionResult:
    """Carry out what `decide` makes of the incident (an `actions` decision): trigger it
    again if need be, point it at the step to fire, record why, and fire the step now;
    its next step becomes a timer. None from `decide`: nothing to do.

    Raises NotFound, what `decide` raises, or Conflict when the incident changed between
    the read and the update (an acknowledgement at the same moment, say)."""
    row = _held(conn, incident_id)
    plan = decide(row)
    if plan is None:
        return ActionResult(row, False)
    claimed = conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id, incidents.c.status == row.status)
        .values(
            status=TRIGGERED,
            acknowledged_at=None,
            acknowledged_by=None,
            policy=plan.policy,
            next_level=plan.step.level,
            next_repeat=plan.step.repeat,
            next_due_at=now,
            updated_at=now,
            # Triggered again: a snooze or an acknowledgement's timeout is over.
            snoozed_until=None,
            ack_timeout_at=None,
        )
    ).rowcount
    if claimed != 1:
        raise Conflict(f"incident {incident_id} changed meanwhile; try again", "status")
    _insert_event.execute(conn, entry(incident_id, now, plan.event, actor, plan.detail))
    replace = plan.event == "incident.reassigned"
    followups = acting.restart_in(conn, incident_id, plan.step, now, replace)
    return ActionResult(get_incident(conn, incident_id), True, followups)


_responder_history = select(incident_events.c.type, incident_events.c.detail).where(
    incident_events.c.type.in_(("incident.responder_added", *actions.RETRIGGERS))
)


def add_responder(
    conn: Connection, incident_id: int, user: str, actor: str, now: datetime, acting: Acting
) -> ActionResult:
    """Page `user` for the incident now, its escalation unchanged; a user already added
    since it was last triggered again is not paged twice. Raises NotFound or Conflict
    (see `actions.add_responder`)."""
    row = _held(conn, incident_id)  # two additions of one user see each other's entry
    earlier = conn.execute(
        _responder_history.where(incident_events.c.incident_id == incident_id).order_by(
            incident_events.c.id
        )
    ).all()
    if not actions.add_responder(incident_id, row.status, user, list(earlier)):
        return ActionResult(row, False)
    _insert_event.execute(
        conn, entry(incident_id, now, "incident.responder_added", actor, {"user": user})
    )
    followups = acting.page_responder_in(conn, incident_id, user, now)
    return ActionResult(get_incident(conn, incident_id), True, followups)


def snooze(
    conn: Connection,
    incident_id: int,
    actor: str,
    until: datetime,
    now: datetime,
    pausing: Pausing,
) -> ActionResult:
    """Acknowledge the incident until `until` (a new end replaces the current one), its
    pending steps, unsent pages and acknowledgement timeout cancelled, and arm its wake.
    Snoozing again until the same end changes nothing. Raises NotFound, or Conflict when it
    is resolved."""
    row = _held(conn, incident_id)
    if not wakes.snooze(incident_id, row.status, row.snoozed_until, until):
        return ActionResult(row, False)
    values: dict[str, Any] = {
        "status": ACKNOWLEDGED,
        "next_due_at": None,
        "snoozed_until": until,
        "ack_timeout_at": None,
        "updated_at": now,
    }
    if row.status == TRIGGERED:
        values.update(acknowledged_at=now, acknowledged_by=actor)
    claimed = conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id, incidents.c.status == row.status)
        .values(values)
    ).rowcount
    if claimed != 1:
        raise Conflict(f"incident {incident_id} changed meanwhile; try again", "status")
    detail = {"until": until.isoformat(), "retriggers_at_level": 1}
    _insert_event.execute(conn, entry(incident_id, now, wakes.SNOOZED, actor, detail))
    followups = pausing.pause_in(conn, incident_id, now)
    followups.jobs.append(wakes.wake_job(incident_id, until))
    return ActionResult(get_incident(conn, incident_id), True, followups)


def arm_ack_timeout(conn: Connection, incident_id: int, at: datetime | None) -> Followups:
    """Set (or with None clear) the acknowledgement timeout of an incident just
    acknowledged; return its wake job to write, or to remove."""
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(ack_timeout_at=at))
    if at is None:
        return Followups(removed=[(ESCALATION, wakes.wake_job_id(incident_id))])
    return Followups(jobs=[wakes.wake_job(incident_id, at)])


def wake(conn: Connection, incident_id: int, now: datetime, acting: Acting) -> ActionResult:
    """Trigger the incident again at level 1 if its snooze ended or its acknowledgement
    timed out by `now`, claimed by `restart`'s conditional UPDATE; otherwise change nothing
    (a wake after a resolution, a second one, or one of an older due time), re-arming the
    wake of a due time still ahead. Raises NotFound or Conflict.

    An incident a maintenance window holds is triggered again without paging: the
    window's end restarts it at level 1 with the others it held."""
    held = _held(conn, incident_id)
    if held.maintenance is not None:
        return _wake_held(conn, held, now)
    result = restart(
        conn,
        incident_id,
        SYSTEM_ACTOR,
        now,
        lambda row: wakes.wake(row.status, row.snoozed_until, row.ack_timeout_at, row.policy, now),
        acting,
    )
    if not result.changed:
        row = result.row
        due = wakes.wake_due(row.snoozed_until, row.ack_timeout_at)
        if row.status == ACKNOWLEDGED and due is not None:
            result.followups.jobs.append(wakes.wake_job(incident_id, due))
    return result


def _wake_held(conn: Connection, row: Row[Any], now: datetime) -> ActionResult:
    """Trigger again, with no step pending, an incident its wake found held by a
    maintenance window (its row locked by the caller); the timeline names the window."""
    plan = wakes.wake(row.status, row.snoozed_until, row.ack_timeout_at, row.policy, now)
    if plan is None:
        return ActionResult(row, False)
    conn.execute(
        update(incidents)
        .where(incidents.c.id == row.id)
        .values(
            status=TRIGGERED,
            acknowledged_at=None,
            acknowledged_by=None,
            next_due_at=None,
            updated_at=now,
            snoozed_until=None,
            ack_timeout_at=None,
        )
    )
    detail = {**plan.detail, "held_by": row.maintenance}
    _insert_event.execute(conn, entry(row.id, now, plan.event, SYSTEM_ACTOR, detail))
    followups = Followups(removed=[(ESCALATION, wakes.wake_job_id(row.id))])
    return ActionResult(get_incident(conn, row.id), True, followups)


Wake = tuple[int, datetime]  # incident, due


def pending_wakes(
    conn: Connection, due_by: datetime | None = None, limit: int | None = None
) -> list[Wake]:
    """Return (incident id, due) of every acknowledged incident's wake (what Redis must
    hold), or of those due by `due_by`, soonest first, at most `limit` (for the sweep)."""
    query = select(incidents.c.id, incidents.c.snoozed_until, incidents.c.ack_timeout_at).where(
        incidents.c.status == ACKNOWLEDGED,
        (incidents.c.snoozed_until.is_not(None)) | (incidents.c.ack_timeout_at.is_not(None)),
    )
    if due_by is not None:
        query = query.where(
            (incidents.c.snoozed_until <= due_by) | (incidents.c.ack_timeout_at <= due_by)
        )
    found = []
    for incident_id, snoozed_until, ack_timeout_at in conn.execute(query):
        due = wakes.wake_due(snoozed_until, ack_timeout_at)
        if due is not None:
            found.append((incident_id, due))
    found.sort(key=lambda item: item[1])
    return found if limit is None else found[:limit]


def opened_since(conn: Connection, since: datetime) -> list[tuple[Any, Any, Any]]:
    """Return (created_at, acknowledged_at, resolved_at) of every incident opened at or
    after `since`, oldest first (for `incidents.stats`)."""
    query = (
        select(incidents.c.created_at, incidents.c.acknowledged_at, incidents.c.resolved_at)
        .where(incidents.c.created_at >= since)
        .order_by(incidents.c.id)
    )
    return [tuple(row) for row in conn.execute(query)]


def opened_before(conn: Connection, since: datetime, until: datetime, limit: int) -> list[datetime]:
    """Return when the newest incidents opened after `since` and at or before `until`
    opened, newest first, at most `limit` of them (what the storm guard reads)."""
    query = (
        select(incidents.c.created_at)
        .where(incidents.c.created_at > since, incidents.c.created_at <= until)
        .order_by(incidents.c.created_at.desc())
        .limit(limit)
    )
    return list(conn.execute(query).scalars())
