"""Applying deliveries and heartbeats to the database. Each function runs inside the one
transaction `Database.run` hands it, and never awaits or touches Redis, so a transaction
cannot be held open across a network call.

A new incident's first step is fired in its opening transaction; closing one and acting on
one go through the incidents domain. Both come in as `Lifecycle` and `Escalation`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, exc, func, insert, select, update
from sqlalchemy.engine import Connection

from oncall.db.fastpath import Prepared, savepoint
from oncall.db.models import alerts, change_events, heartbeats, incident_events, incidents
from oncall.directory.model import Directory, Integration, Policy
from oncall.escalation.steps import FIRST_STEP, Step
from oncall.incidents.lifecycle import RESOLVED, TRIGGERED, Opened
from oncall.incidents.timeline import SYSTEM_ACTOR, entry
from oncall.ingest.alertmanager import AlertGroup
from oncall.ingest.changes import CHANGES_KEPT, SHOWN, kept_since, shown_window
from oncall.ingest.context import NO_CONTEXT
from oncall.ingest.dedup import IncidentChange, KnownAlert, OpenIncident, Refire, plan_delivery
from oncall.ingest.events_v2 import ChangeEvent, Event, trigger_group
from oncall.ingest.heartbeats import dedup_key, missed_group
from oncall.ingest.opening import plan_opening
from oncall.notify.outbox import SOURCE_URLS_READ
from oncall.timers.followups import Followups, JobSpec

log = logging.getLogger(__name__)
_CHUNK = 500  # bound parameters per IN (...): far below every backend's limit
_EVENT_FINGERPRINTS = 100  # fingerprints listed in one alert.* timeline entry


class Fired(Protocol):
    """What firing a step leaves: whether it fired, its followups."""

    fired: bool
    followups: Followups


class Escalation(Protocol):
    """Paging a new incident's first level, in its opening transaction."""

    def fire_in(
        self,
        conn: Connection,
        incident_id: int,
        step: Step,
        directory: Directory,
        now: datetime,
        opened: Opened | None,
    ) -> Fired: ...

    def first_timer_in(
        self, conn: Connection, incident_id: int, policy: Policy, now: datetime
    ) -> JobSpec: ...


class Lifecycle(Protocol):
    """Closing, acknowledging and resolving incidents, in the caller's transaction."""

    def close_in(
        self, conn: Connection, incident_id: int, resolved: bool, now: datetime
    ) -> Followups: ...

    def acknowledge_in(
        self, conn: Connection, incident_id: int, actor: str, now: datetime
    ) -> Any: ...

    def resolve_in(
        self, conn: Connection, incident_id: int, actor: str, now: datetime, reason: str
    ) -> Any: ...

    def held_in(
        self, conn: Connection, labels: dict[str, str], integration: str, now: datetime
    ) -> Any: ...  # the open maintenance window holding a new incident, or None


@dataclass
class IngestResult:
    incidents: list[int] = field(default_factory=list)  # every incident the delivery touched
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    steps_fired: int = 0  # first steps paged in the same transaction
    followups: Followups = field(default_factory=Followups)  # for Redis, after commit


_insert_event = Prepared(insert(incident_events))

# The hot path's statements, built once and compiled once (see oncall.db.fastpath).
_find_open = Prepared(
    select(incidents.c.id, incidents.c.firing_count, incidents.c.truncated_alerts).where(
        incidents.c.integration == bindparam("integration"),
        incidents.c.dedup_key == bindparam("dedup_key"),
        incidents.c.status != RESOLVED,
    )
)
_find_occurrences = Prepared(
    select(
        alerts.c.id,
        alerts.c.incident_id,
        alerts.c.status,
        alerts.c.fingerprint,
        alerts.c.starts_at,
        incidents.c.status,
        incidents.c.firing_count,
        alerts.c.generation,
    )
    .join(incidents, incidents.c.id == alerts.c.incident_id)
    .where(
        alerts.c.integration == bindparam("integration"),
        alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
    )
)
_insert_incident = Prepared(insert(incidents).returning(*incidents.c))
_insert_alert = Prepared(insert(alerts))
_rekey_alert = Prepared(
    update(alerts)
    .where(alerts.c.id == bindparam("alert_id"))
    .values(starts_at=bindparam("starts_at"), updated_at=bindparam("now"))
)
_resolve_alert = Prepared(
    update(alerts)
    .where(alerts.c.id == bindparam("alert_id"))
    .values(status="resolved", ends_at=bindparam("ends_at"), updated_at=bindparam("now"))
)
_COUNTS = {
    "updated_at": bindparam("now"),
    "alert_count": incidents.c.alert_count + bindparam("added"),
    "firing_count": bindparam("firing"),
    # NULL keeps the stored value: most changes leave it alone.
    "truncated_alerts": func.coalesce(bindparam("truncated"), incidents.c.truncated_alerts),
}
_update_counts = Prepared(
    update(incidents).where(incidents.c.id == bindparam("incident_id")).values(_COUNTS)
)
_auto_resolve = Prepared(  # the counts and the resolution in one statement
    update(incidents)
    .where(incidents.c.id == bindparam("incident_id"))
    .values(
        {
            **_COUNTS,
            "status": RESOLVED,
            "resolved_at": bindparam("now"),
            "resolved_by": SYSTEM_ACTOR,
            "next_due_at": None,
        }
    )
)


def open_incident_id(conn: Connection, integration: str, dedup_key: str) -> int | None:
    """Return the id of the open incident of (integration, dedup_key), or None."""
    found: int | None = _find_open.execute(
        conn, {"integration": integration, "dedup_key": dedup_key}
    ).scalar()
    return found


def ingest_group(
    conn: Connection,
    integration: str,
    group: AlertGroup,
    directory: Directory,
    now: datetime,
    lifecycle: Lifecycle,
    escalation: Escalation,
) -> IngestResult:
    """Apply one Alertmanager delivery and return which incidents it touched, opened, resolved.

    A new incident is routed and its first level paged in this same transaction (the
    first step is due at once; a timer would only add a round trip through Redis). A pure
    re-delivery reads and writes nothing more than the two look-ups.
    """
    # Occurrences first, the open incident second: a delivery committed by another process
    # between the two reads (PostgreSQL reads each statement afresh) then shows up as an
    # open incident whose alerts this plan adds again, which the unique index refuses and
    # the delivery is retried whole; read the other way round, it looked like a pure
    # re-delivery of a group with no open incident and answered no incident at all.
    stored, open_firing = _stored_occurrences(conn, integration, group)
    open_row = _find_open.execute(
        conn, {"integration": integration, "dedup_key": group.group_key}
    ).first()
    open_incident = OpenIncident(*open_row) if open_row else None
    changes = plan_delivery(group, open_incident, stored, open_firing)
    result = IngestResult()
    if open_incident is not None:
        result.incidents.append(open_incident.id)
    for change in changes:
        if change.incident_id is None:
            held = lifecycle.held_in(conn, group.common_labels, integration, now)
            incident_id = _open(
                conn, integration, group, change, directory, now, result, escalation, held
            )
        else:
            incident_id = _apply(conn, integration, change, now)
        if change.auto_resolves:
            result.resolved.append(incident_id)
            result.followups.merge(lifecycle.close_in(conn, incident_id, True, now))
        if incident_id not in result.incidents:
            result.incidents.append(incident_id)
    return result


def ingest_event(
    conn: Connection,
    integration: str,
    event: Event,
    directory: Directory,
    now: datetime,
    lifecycle: Lifecycle,
    escalation: Escalation,
) -> IngestResult:
    """Apply one Events v2 event (its dedup_key set) and return the incidents it touched.

    A trigger joins the open incident of its dedup_key, or opens one through the same path
    as an Alertmanager group (so routing, escalation and pages are the same); acknowledge
    and resolve act on the open incident and are no-ops without one, as in PagerDuty.
    """
    assert event.dedup_key is not None
    open_id = open_incident_id(conn, integration, event.dedup_key)
    if event.action == "trigger":
        if open_id is not None:
            return IngestResult(incidents=[open_id])
        lifecycles = conn.execute(
            select(func.count())
            .select_from(incidents)
            .where(incidents.c.integration == integration, incidents.c.dedup_key == event.dedup_key)
        ).scalar_one()
        return ingest_group(
            conn,
            integration,
            trigger_group(event, lifecycles, now),
            directory,
            now,
            lifecycle,
            escalation,
        )
    if open_id is None:
        return IngestResult()
    if event.action == "acknowledge":
        action = lifecycle.acknowledge_in(conn, open_id, integration, now)
    else:
        conn.execute(
            update(alerts)
            .where(alerts.c.incident_id == open_id, alerts.c.status == "firing")
            .values(status="resolved", ends_at=now, updated_at=now)
        )
        conn.execute(update(incidents).where(incidents.c.id == open_id).values(firing_count=0))
        action = lifecycle.resolve_in(conn, open_id, integration, now, "resolve event")
    resolved = [open_id] if event.action == "resolve" and action.changed else []
    return IngestResult(incidents=[open_id], resolved=resolved, followups=action.followups)


def _stored_occurrences(
    conn: Connection, integration: str, group: AlertGroup
) -> tuple[list[KnownAlert], dict[int, int]]:
    """Return the stored occurrences of the group's fingerprints worth matching against.

    That is every exact (fingerprint, startsAt) match (every generation) plus firing
    occurrences of open incidents, with the firing counts of those open incidents.
    """
    wanted = {(a.fingerprint, a.starts_at) for a in group.alerts}
    fingerprints = sorted({a.fingerprint for a in group.alerts})
    stored: list[KnownAlert] = []
    open_firing: dict[int, int] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        rows = _find_occurrences.execute(
            conn, {"integration": integration, "fingerprints": fingerprints[start : start + _CHUNK]}
        ).all()
        for row in rows:
            alert_id, incident_id, status, fingerprint, starts_at, inc_status, firing, gen = row
            is_open = inc_status != RESOLVED
            if (fingerprint, starts_at) not in wanted and not (is_open and status == "firing"):
                continue  # an old occurrence: history, not part of this delivery
            stored.append(
                KnownAlert(alert_id, incident_id, fingerprint, status, is_open, starts_at, gen)
            )
            if is_open:
                open_firing[incident_id] = firing
    return stored, open_firing


def _open(
    conn: Connection,
    integration: str,
    group: AlertGroup,
    change: IncidentChange,
    directory: Directory,
    now: datetime,
    result: IngestResult,
    escalation: Escalation,
    held: Any = None,
) -> int:
    """Open, route and page a new incident with the change's alerts; return its id. One a
    maintenance window holds (`held`) pages nobody: it waits at level 1 for the window's end.

    (A change that opens an incident always has a firing alert: plan_delivery opens none
    for alerts that are already resolved.)"""
    opening = plan_opening(directory, group, now, held is not None)
    route, urgency = opening.route, opening.urgency
    next_level, next_repeat, next_due = opening.pointer
    firing = change.firing_after
    incident = _insert_incident.execute(
        conn,
        {
            "integration": integration,
            "dedup_key": group.group_key,
            "status": TRIGGERED,
            "title": group.title(),
            "severity": group.severity(),
            "labels": group.common_labels,
            "annotations": group.common_annotations,
            "external_url": group.external_url,
            "alert_count": change.rows_added,
            "firing_count": firing,
            "truncated_alerts": group.truncated_alerts,
            "created_at": now,
            "updated_at": now,
            "route": route.describe(),
            "policy": route.policy,
            "notify_resolved": route.notify_resolved,
            "urgency": urgency,
            "next_level": next_level,
            "next_repeat": next_repeat,
            "next_due_at": next_due,
            "maintenance": None if held is None else held.key,
        },
    ).one()
    incident_id: int = incident.id
    result.opened.append(incident_id)
    events = [
        entry(
            incident_id,
            now,
            "incident.triggered",
            integration,
            {"title": group.title(), "severity": group.severity(), "dedup_key": group.group_key},
        )
    ]
    _write_alerts(conn, integration, incident_id, change, now, events, opening=True)
    events.append(
        entry(
            incident_id,
            now,
            "incident.routed",
            SYSTEM_ACTOR,
            {"route": route.describe(), "policy": route.policy, "urgency": urgency},
        )
    )
    if held is not None:
        detail = {"window": held.name, "key": held.key}
        events.append(entry(incident_id, now, "maintenance.suppressed", SYSTEM_ACTOR, detail))
    _insert_event.execute(conn, events)  # before the step's: the timeline is in id order
    if held is not None:
        return incident_id
    added = change.add + [refire.alert for refire in change.refire]
    first = added[0] if added else None
    opened = Opened(
        incident,
        [a.generator_url for a in added[:SOURCE_URLS_READ]],
        first.annotations if first is not None else None,
        first.context if first is not None else NO_CONTEXT,
    )
    try:
        with savepoint(conn):
            fired = escalation.fire_in(conn, incident_id, FIRST_STEP, directory, now, opened)
        result.followups.merge(fired.followups)
        result.steps_fired += fired.fired
    except exc.SQLAlchemyError as error:
        if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
            raise  # the connection is gone: the whole delivery is retried (a 503)
        # The alert is kept whatever happens to its first page: the step becomes a timer,
        # due now, retried and reconciled like every other step.
        log.warning(
            "first step failed, left to its timer", exc_info=True, extra={"incident": incident_id}
        )
        policy = directory.policies[route.policy]
        result.followups.jobs.append(escalation.first_timer_in(conn, incident_id, policy, now))
    return incident_id


def _apply(conn: Connection, integration: str, change: IncidentChange, now: datetime) -> int:
    """Apply a change to an open incident; return its id."""
    incident_id = change.incident_id
    assert incident_id is not None
    events: list[dict[str, Any]] = []
    _write_alerts(conn, integration, incident_id, change, now, events)
    (_auto_resolve if change.auto_resolves else _update_counts).execute(
        conn,
        {
            "incident_id": incident_id,
            "now": now,
            "added": change.rows_added,
            "firing": change.firing_after,
            "truncated": change.truncated_alerts,
        },
    )
    if change.auto_resolves:
        events.append(
            entry(
                incident_id,
                now,
                "incident.resolved",
                SYSTEM_ACTOR,
                {"reason": "all alerts resolved"},
            )
        )
    if events:
        _insert_event.execute(conn, events)
    return incident_id


def _write_alerts(
    conn: Connection,
    integration: str,
    incident_id: int,
    change: IncidentChange,
    now: datetime,
    events: list[dict[str, Any]],
    opening: bool = False,
) -> None:
    """Re-key, add, re-fire and resolve the change's alerts; append their timeline entries
    (`opening`: the change opens `incident_id`, so a re-fire is what opened it)."""
    if change.rekey:
        _rekey_alert.execute(
            conn,
            [
                {"alert_id": alert_id, "starts_at": starts_at, "now": now}
                for alert_id, starts_at in change.rekey
            ],
        )
    added = [(a, 0) for a in change.add] + [(r.alert, r.generation) for r in change.refire]
    if added:
        _insert_alert.execute(
            conn,
            [
                {
                    "incident_id": incident_id,
                    "integration": integration,
                    "fingerprint": a.fingerprint,
                    "starts_at": a.starts_at,
                    "generation": generation,
                    "status": a.status,
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "ends_at": a.ends_at,
                    "generator_url": a.generator_url,
                    "created_at": now,
                    "updated_at": now,
                    **a.context.stored(),
                }
                for a, generation in added
            ],
        )
        events.append(
            entry(
                incident_id,
                now,
                "alert.added",
                integration,
                _alert_detail([a.fingerprint for a, _ in added]),
            )
        )
    if change.refire:
        kind = "incident.refired" if opening else "alert.refired"
        events.append(entry(incident_id, now, kind, integration, _refire_detail(change.refire)))
    if change.resolve:
        _resolve_alert.execute(
            conn,
            [
                {"alert_id": alert_id, "ends_at": ends_at, "now": now}
                for alert_id, _, ends_at in change.resolve
            ],
        )
    resolved = [fingerprint for _, fingerprint, _ in change.resolve]
    resolved += [a.fingerprint for a in change.add if a.status == "resolved"]
    if resolved:
        events.append(
            entry(incident_id, now, "alert.resolved", integration, _alert_detail(resolved))
        )


def _alert_detail(fingerprints: Sequence[str]) -> dict[str, Any]:
    return {"count": len(fingerprints), "fingerprints": list(fingerprints[:_EVENT_FINGERPRINTS])}


def _refire_detail(refires: Sequence[Refire]) -> dict[str, Any]:
    """Return the timeline detail of re-fired occurrences: the incidents they fired in
    before, and why they count again."""
    previous = sorted({r.previous.incident_id for r in refires})
    named = ", ".join(f"#{incident_id}" for incident_id in previous)
    if all(r.still_firing for r in refires):
        reason = f"the alert still fires after incident {named} was resolved"
    else:
        reason = f"the alert fires again after it resolved in incident {named}"
    return {
        **_alert_detail([r.alert.fingerprint for r in refires]),
        "previous_incident": previous[0],
        "previous_incidents": previous,
        "reason": reason,
    }


def ping(
    conn: Connection, heartbeat: Integration, now: datetime, lifecycle: Lifecycle
) -> tuple[datetime, Followups]:
    """Record a ping: arm the next deadline and resolve the heartbeat's open incident.

    Returns the deadline (for the timer) and what Redis must do after commit.
    """
    deadline = now + heartbeat.deadline_after
    values = {"last_ping_at": now, "deadline_at": deadline}
    if not conn.execute(
        update(heartbeats).where(heartbeats.c.name == heartbeat.name).values(**values)
    ).rowcount:
        conn.execute(insert(heartbeats).values(name=heartbeat.name, **values))
    followups = Followups()
    open_id = open_incident_id(conn, heartbeat.name, dedup_key(heartbeat.name))
    if open_id is not None:
        followups = lifecycle.resolve_in(
            conn, open_id, heartbeat.name, now, "heartbeat ping"
        ).followups
    return deadline, followups


def check_heartbeat(
    conn: Connection,
    heartbeat: Integration,
    directory: Directory,
    now: datetime,
    lifecycle: Lifecycle,
    escalation: Escalation,
) -> IngestResult:
    """Open an incident if the armed deadline has passed without a ping; else do nothing.

    The deadline is claimed with a conditional UPDATE, so a duplicate or stale timer (a ping
    came in, re-arming it) opens nothing.
    """
    row = conn.execute(select(heartbeats).where(heartbeats.c.name == heartbeat.name)).first()
    if row is None or row.deadline_at is None or row.deadline_at > now:
        return IngestResult()
    claimed = conn.execute(
        update(heartbeats)
        .where(heartbeats.c.name == heartbeat.name, heartbeats.c.deadline_at == row.deadline_at)
        .values(deadline_at=None, missed=row.missed + 1)
    ).rowcount
    if claimed != 1:
        return IngestResult()
    group = missed_group(heartbeat, row.last_ping_at, row.deadline_at, row.missed + 1)
    return ingest_group(conn, heartbeat.name, group, directory, now, lifecycle, escalation)


def armed_heartbeats(
    conn: Connection, due_by: datetime | None = None, limit: int | None = None
) -> list[tuple[str, datetime]]:
    """Return every armed deadline (what the escalation job store must hold), or those
    passed by `due_by`, soonest first, at most `limit`."""
    query = select(heartbeats.c.name, heartbeats.c.deadline_at).where(
        heartbeats.c.deadline_at.is_not(None)
    )
    if due_by is not None:
        query = query.where(heartbeats.c.deadline_at <= due_by).order_by(heartbeats.c.deadline_at)
    return [(name, deadline) for name, deadline in conn.execute(query.limit(limit))]


def add_change(conn: Connection, integration: str, change: ChangeEvent, now: datetime) -> int:
    """Store a change event received at `now` and prune its integration's older ones (past
    RETENTION, or beyond the newest CHANGES_KEPT); return its id."""
    change_id: int = conn.execute(
        insert(change_events)
        .values(
            integration=integration,
            summary=change.summary,
            source=change.source,
            timestamp=change.timestamp,
            received_at=now,
            **change.context.stored(),
        )
        .returning(change_events.c.id)
    ).scalar_one()
    mine = change_events.c.integration == integration
    conn.execute(delete(change_events).where(mine, change_events.c.received_at < kept_since(now)))
    oldest_kept = conn.execute(
        select(change_events.c.id)
        .where(mine)
        .order_by(change_events.c.id.desc())
        .offset(CHANGES_KEPT - 1)
        .limit(1)
    ).scalar()
    if oldest_kept is not None:
        conn.execute(delete(change_events).where(mine, change_events.c.id < oldest_kept))
    return change_id


def changes_before(conn: Connection, integration: str, opened_at: datetime) -> list[Any]:
    """Return the change events `integration` received in the window before an incident
    that opened at `opened_at`, newest first, at most SHOWN."""
    start, end = shown_window(opened_at)
    return list(
        conn.execute(
            select(change_events)
            .where(
                change_events.c.integration == integration,
                change_events.c.received_at >= start,
                change_events.c.received_at <= end,
            )
            .order_by(change_events.c.received_at.desc(), change_events.c.id.desc())
            .limit(SHOWN)
        ).all()
    )
