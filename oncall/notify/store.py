"""The notification outbox in the database. Each function runs inside the one transaction
`Database.run` hands it; those ending in a page's write claim its first attempt there too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from oncall.db.fastpath import Prepared
from oncall.db.models import alerts, incident_events, incidents, meta, notification_attempts
from oncall.db.models import notifications as outbox
from oncall.directory.model import User
from oncall.incidents.lifecycle import TRIGGERED, Opened
from oncall.incidents.timeline import SYSTEM_ACTOR, entry
from oncall.ingest.context import NO_CONTEXT, AlertContext, stored_context
from oncall.notify.outbox import (
    LEASE,
    SOURCE_URLS_READ,
    Attempt,
    Claimed,
    level_pages,
    next_attempt,
    page_sources,
)
from oncall.notify.retry import DELIVERED
from oncall.notify.storm import (
    DEFAULT_THRESHOLD,
    DIGEST_KIND,
    DIGEST_TITLES,
    FOLDED,
    DigestSummary,
    StormThreshold,
    fold,
    in_storm,
    storm_possible,
)
from oncall.timers.followups import (
    NOTIFICATION,
    OVERDUE_AFTER,
    Followups,
    JobSpec,
    delivery_job,
    delivery_job_id,
)

_insert_page = Prepared(insert(outbox).returning(*outbox.c))
_insert_event = Prepared(insert(incident_events))
_find_page = Prepared(select(outbox).where(outbox.c.id == bindparam("notification_id")))
_find_incident = Prepared(select(incidents).where(incidents.c.id == bindparam("incident_id")))
# The same, holding the incident against an acknowledgement until the claim commits (see
# `_still_wanted`).
_find_incident_shared = Prepared(
    select(incidents).where(incidents.c.id == bindparam("incident_id")).with_for_update(read=True)
)
_cancel_pages = Prepared(  # cancels and names the cancelled in one statement
    update(outbox)
    .where(
        outbox.c.incident_id == bindparam("of_incident"),
        outbox.c.kind == "trigger",
        outbox.c.status == "pending",
    )
    .values(status="cancelled", next_attempt_at=None, updated_at=bindparam("now"))
    .returning(outbox.c.id)
)
# The contacts a trigger page may have reached: sent, or claimed and not yet recorded
# (pending with an attempt: a page due at once has its first attempt claimed as it is
# written, so one may be on the wire right now), or cancelled after an attempt went out.
# Left out: dead letters, and pages a notification rule holds for later (no attempt yet).
_paged_contacts = Prepared(
    select(outbox.c.user_name, outbox.c.contact_index, outbox.c.contact_type, outbox.c.contact_name)
    .distinct()
    .where(
        outbox.c.incident_id == bindparam("incident_id"),
        outbox.c.kind == "trigger",
        or_(
            outbox.c.status == "sent",
            (outbox.c.status == "pending") & (outbox.c.attempts > 0),
            (outbox.c.status == "cancelled") & (outbox.c.sent_at.is_not(None)),
        ),
    )
    .order_by(outbox.c.user_name, outbox.c.contact_index)
)
_claim_page = Prepared(
    update(outbox)
    .where(
        outbox.c.id == bindparam("notification_id"),
        outbox.c.status == "pending",
        outbox.c.attempts == bindparam("attempts"),
    )
    .values(
        attempts=bindparam("next_attempt"),
        next_attempt_at=bindparam("lease_until"),
        updated_at=bindparam("now"),
    )
)
_source_urls = Prepared(
    select(alerts.c.generator_url)
    .where(alerts.c.incident_id == bindparam("incident_id"))
    .order_by(alerts.c.id)
    .limit(SOURCE_URLS_READ)
)
_first_alert = Prepared(
    select(alerts.c.annotations, alerts.c.custom_details, alerts.c.links, alerts.c.images)
    .where(alerts.c.incident_id == bindparam("incident_id"))
    .order_by(alerts.c.id)
    .limit(1)
)
_insert_attempt = Prepared(insert(notification_attempts))
# An attempt's outcome changes only a pending row: a page cancelled while its attempt was
# on the wire stays cancelled (its attempt is still recorded, and `sent_at` says it went).
_update_page = update(outbox).where(
    outbox.c.id == bindparam("notification_id"), outbox.c.status == "pending"
)
_page_sent = Prepared(
    _update_page.values(
        status="sent",
        sent_at=bindparam("now"),
        next_attempt_at=None,
        last_error=None,
        updated_at=bindparam("now"),
    )
)
_cancelled_sent = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("notification_id"), outbox.c.status == "cancelled")
    .values(sent_at=bindparam("now"), updated_at=bindparam("now"))
)
# FOR SHARE of the incident (PostgreSQL; SQLite runs one transaction at a time anyway): an
# acknowledgement's UPDATE of the incident waits until this read has committed, so the
# pages it let through have begun before the acknowledgement can commit and be answered.
_still_wanted = Prepared(
    select(outbox.c.id, outbox.c.status, incidents.c.status.label("incident_status"))
    .join(incidents, incidents.c.id == outbox.c.incident_id)
    .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
    .with_for_update(read=True, of=incidents)
)
_page_failed = Prepared(
    _update_page.values(
        status="failed",
        next_attempt_at=None,
        last_error=bindparam("error"),
        updated_at=bindparam("now"),
    )
)
_page_retry = Prepared(
    _update_page.values(
        next_attempt_at=bindparam("next_at"),
        last_error=bindparam("error"),
        updated_at=bindparam("now"),
    )
)


# A page: user, contact index, type and name, and how long after `now` it is due.
Target = tuple[str, int, str, str | None, timedelta]


def _add_pages(
    conn: Connection,
    incident_id: int,
    kind: str,
    level: int,
    repeat: int,
    targets: Sequence[Target],
    now: datetime,
    known: Opened | Row[Any] | None = None,
) -> list[Claimed]:
    """Write the pages and return them: those due now with their first attempt already
    claimed (leased, attempt 1), so each goes out without another transaction; those due
    later pending, their next attempt at their due time, not claimed (`Claimed.waiting`):
    their delivery job wakes them, like a retry.
    `known`: the incident when the caller has it, as this transaction inserted it
    (`Opened`) or as it has just read it (its row); read here otherwise.
    """
    if not targets:
        return []
    if isinstance(known, Opened):
        incident, first, context = known.incident, known.first_annotations, known.first_context
        urls, annotations = page_sources(known.generator_urls, incident.annotations, lambda: first)
    else:
        incident = (
            known
            if known is not None
            else _find_incident.execute(conn, {"incident_id": incident_id}).one()
        )
        urls, annotations, context = _page_sources(conn, incident)
    claims = []
    for user_name, contact_index, contact_type, contact_name, after in targets:
        attempt = 0 if after > timedelta(0) else 1
        row = _insert_page.execute(
            conn,
            {
                "incident_id": incident_id,
                "kind": kind,
                "level": level,
                "repeat": repeat,
                "user_name": user_name,
                "contact_index": contact_index,
                "contact_type": contact_type,
                "contact_name": contact_name,
                "status": "pending",
                "attempts": attempt,
                "next_attempt_at": now + after if attempt == 0 else now + LEASE,
                "created_at": now,
                "updated_at": now,
            },
        ).one()
        claims.append(Claimed(row, incident, attempt, urls, annotations, context=context))
    return claims


def create_pages(
    conn: Connection,
    incident_id: int,
    level: int,
    repeat: int,
    users: Sequence[User],
    now: datetime,
    opened: Opened | None = None,
    storm: StormThreshold | None = None,
) -> list[Claimed]:
    """Write the pages of each user paged by a level, one pending row per rule of the
    user's notification rules for the incident's urgency (by default, every contact at
    once); return them (see `_add_pages`). A rule is due `after` the level fired (`now`).
    In a storm by `storm` the pages are written folded instead, and each user gets a
    digest (`_fold_pages`).

    Called inside the escalation step's transaction, so a step never fires without its
    pages. `opened`: the incident, when this transaction inserted it.
    """
    incident = (
        opened.incident
        if opened is not None
        else _find_incident.execute(conn, {"incident_id": incident_id}).one()
    )
    pages, unreachable = level_pages(users, incident.urgency)
    targets: list[Target] = [(u.name, c.index, c.type, c.name, after) for u, c, after in pages]
    if unreachable:
        _insert_event.execute(
            conn,
            [
                entry(
                    incident_id,
                    now,
                    "notification.skipped",
                    SYSTEM_ACTOR,
                    {"user": name, "reason": "no contact methods"},
                )
                for name in unreachable
            ],
        )
    if storm is not None and targets and storm_now(conn, storm, now):
        return _fold_pages(
            conn, incident_id, level, repeat, targets, now, opened or incident, storm
        )
    return _add_pages(conn, incident_id, "trigger", level, repeat, targets, now, opened or incident)


# The storm guard: the state it decides on is read here, so a restart forgets nothing.
_newest_opened = Prepared(
    select(incidents.c.created_at)
    .order_by(incidents.c.id.desc())
    .limit(bindparam("n", type_=Integer))
)
_insert_folded = Prepared(insert(outbox))
_pending_digest = Prepared(
    select(outbox.c.id)
    .where(
        outbox.c.status == "pending",
        outbox.c.kind == DIGEST_KIND,
        outbox.c.user_name == bindparam("user"),
    )
    .order_by(outbox.c.id)
)
_last_digest = Prepared(
    select(outbox.c.sent_at, outbox.c.updated_at)
    .where(outbox.c.kind == DIGEST_KIND, outbox.c.user_name == bindparam("user"))
    .order_by(outbox.c.id.desc())
    .limit(1)
)
_merge_digest = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("notification_id"), outbox.c.status == "pending")
    .values(
        status="cancelled",
        next_attempt_at=None,
        last_error=bindparam("reason"),
        updated_at=bindparam("now"),
    )
)


_nth_newest_opened = Prepared(
    select(incidents.c.created_at)
    .order_by(incidents.c.id.desc())
    .limit(1)
    .offset(bindparam("n", type_=Integer))
)


def storm_now(conn: Connection, threshold: StormThreshold, now: datetime) -> bool:
    """Return whether the service is in a storm at `now`, from the newest incidents (one
    row read when no storm is possible, the usual case)."""
    nth = _nth_newest_opened.execute(conn, {"n": threshold.count}).scalar()
    if not storm_possible(nth, threshold, now):
        return False
    opened = _newest_opened.execute(conn, {"n": threshold.lookback}).scalars()
    return in_storm(opened, threshold, now)


def digest_summary(conn: Connection, threshold: StormThreshold, now: datetime) -> DigestSummary:
    """Return what a digest sent at `now` says: the incidents opened within the window."""
    since = now - threshold.window
    opened = incidents.c.created_at > since
    count = conn.execute(select(func.count()).select_from(incidents).where(opened)).scalar_one()
    newest = conn.execute(
        select(incidents.c.id, incidents.c.title)
        .where(opened)
        .order_by(incidents.c.id.desc())
        .limit(DIGEST_TITLES)
    ).all()
    return DigestSummary(count, threshold.window, tuple((i, t) for i, t in newest))


def _fold_pages(
    conn: Connection,
    incident_id: int,
    level: int,
    repeat: int,
    targets: Sequence[Target],
    now: datetime,
    known: Opened | Row[Any],
    threshold: StormThreshold,
) -> list[Claimed]:
    """Write a level's pages folded (kept, never sent) and make sure each user paged has
    one pending digest (to the contacts their rules page first, a digest interval after
    their last one); return the digests written (see `_add_pages`), none when each user
    had one pending already. The digest points at this incident."""
    _insert_folded.execute(
        conn,
        [
            {
                "incident_id": incident_id,
                "kind": "trigger",
                "level": level,
                "repeat": repeat,
                "user_name": user_name,
                "contact_index": contact_index,
                "contact_type": contact_type,
                "contact_name": contact_name,
                "status": FOLDED,
                "attempts": 0,
                "next_attempt_at": None,
                "last_error": "storm: folded into a digest",
                "created_at": now,
                "updated_at": now,
            }
            for user_name, contact_index, contact_type, contact_name, _ in targets
        ],
    )

    def pending(user_name: str) -> bool:
        return _pending_digest.execute(conn, {"user": user_name}).first() is not None

    def last(user_name: str) -> datetime | None:
        row = _last_digest.execute(conn, {"user": user_name}).first()
        return None if row is None else row.sent_at or row.updated_at

    folded, planned = fold([(t[0], t[:4], t[4]) for t in targets], pending, last, now)
    digests: list[Target] = [(*contact, due - now) for _, contact, due in planned]
    _insert_event.execute(
        conn,
        [
            entry(
                incident_id,
                now,
                "notification.folded",
                SYSTEM_ACTOR,
                {"user": user_name, "reason": "storm", "level": level, "repeat": repeat},
            )
            for user_name in folded
        ],
    )
    claims = _add_pages(conn, incident_id, DIGEST_KIND, 0, 0, digests, now, known)
    if any(not c.waiting for c in claims):
        summary = digest_summary(conn, threshold, now)
        claims = [c if c.waiting else replace(c, digest=summary) for c in claims]
    return claims


def stop_pages(conn: Connection, incident_id: int, now: datetime) -> list[int]:
    """Cancel the incident's pages not yet sent; return their ids (their jobs to remove)."""
    return sorted(_cancel_pages.execute(conn, {"of_incident": incident_id, "now": now}).scalars())


def resolved_messages(conn: Connection, incident_id: int, now: datetime) -> list[Claimed]:
    """Queue one `resolved` message per contact that was paged for the incident (unless the
    route said `notify_resolved: false`); return the claims."""
    incident = _find_incident.execute(conn, {"incident_id": incident_id}).one()
    if not incident.notify_resolved:
        return []
    paged = _paged_contacts.execute(conn, {"incident_id": incident_id}).all()
    targets = [(*r, timedelta(0)) for r in paged]
    return _add_pages(conn, incident_id, "resolved", 0, 0, targets, now, incident)


def on_incident_closed(
    conn: Connection, incident_id: int, resolved: bool, now: datetime
) -> Followups:
    """Stop unsent pages, and on resolution queue the resolved messages (decided before
    the stop, which cancels the pages that may be on the wire right now)."""
    messages = resolved_messages(conn, incident_id, now) if resolved else []
    followups = Followups(
        removed=[(NOTIFICATION, delivery_job_id(n)) for n in stop_pages(conn, incident_id, now)]
    )
    followups.pages += messages
    return followups


def claim(
    conn: Connection,
    notification_id: int,
    now: datetime,
    storm: StormThreshold = DEFAULT_THRESHOLD,
) -> Claimed | str:
    """Claim the next attempt of a pending, due row; return it, or why nothing is to be done.
    A digest is claimed with what it says now (`storm`: its window).

    The claim bumps `attempts` with a conditional UPDATE and leases the row for LEASE, so a
    duplicate job, or the reconciler re-adding a job for an attempt in flight, does nothing;
    after a crash the lease runs out and the page is sent again (at least once).
    """
    row = _find_page.execute(conn, {"notification_id": notification_id}).first()
    if row is None:
        return "notification not found"
    if row.status != "pending":
        return f"notification is {row.status}"
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        return "not due yet"
    incident = _find_incident_shared.execute(conn, {"incident_id": row.incident_id}).one()
    if row.kind == "trigger" and incident.status != TRIGGERED:
        stop_pages(conn, incident.id, now)  # the backstop when cancelling failed
        return f"incident is {incident.status}"
    if row.kind == DIGEST_KIND:
        # Two transactions folding at once may each have written a digest for the person:
        # the earliest pending one goes out, the others merge into it.
        first = _pending_digest.execute(conn, {"user": row.user_name}).scalar()
        if first is not None and first != row.id:
            reason = f"storm: merged into digest {first}"
            _merge_digest.execute(conn, {"notification_id": row.id, "reason": reason, "now": now})
            return "merged into an earlier digest"
    claimed = _claim_page.execute(
        conn,
        {
            "notification_id": notification_id,
            "attempts": row.attempts,
            "next_attempt": row.attempts + 1,
            "lease_until": now + LEASE,
            "now": now,
        },
    ).rowcount
    if claimed != 1:
        return "claimed by another run"
    urls, annotations, context = _page_sources(conn, incident)
    digest = digest_summary(conn, storm, now) if row.kind == DIGEST_KIND else None
    return Claimed(row, incident, row.attempts + 1, urls, annotations, digest, context)


def still_wanted(conn: Connection, notification_ids: Sequence[int]) -> set[int]:
    """Return which of the claimed pages are still to be sent: their row pending and their
    incident still triggered. Read just before the send of pages claimed in another
    transaction (an escalation step's, an incident's opening), so an acknowledgement or
    resolution that committed in between stops them."""
    rows = _still_wanted.execute(conn, {"ids": list(notification_ids)})
    return {row.id for row in rows if row.status == "pending" and row.incident_status == TRIGGERED}


def _page_sources(
    conn: Connection, incident: Row[Any]
) -> tuple[tuple[str, ...], dict[str, Any], AlertContext]:
    """Return a page's source links (the alerts' generator URLs), its annotations and its
    first alert's context (details, links, images)."""
    params = {"incident_id": incident.id}
    # The first alert alone is read whole: decoding every alert's annotations would cost
    # more than the rest of writing the page.
    first = _first_alert.execute(conn, params).first()
    urls, annotations = page_sources(
        _source_urls.execute(conn, params).scalars(),
        incident.annotations,
        lambda: None if first is None else first.annotations,
    )
    if first is None:
        return urls, annotations, NO_CONTEXT
    return urls, annotations, stored_context(first.custom_details, first.links, first.images)


def record_attempts(
    conn: Connection, attempts: Sequence[Attempt], retry_base: timedelta, now: datetime
) -> list[JobSpec | None]:
    """Store attempts and their consequences; return the job of each one's next attempt
    (in order), if any.

    Delivered: sent. Permanent, or the last failure: failed (a dead letter), with
    `notification.failed` in the timeline. Otherwise pending again when `next_attempt`
    says. Pages sent together are recorded together: the delivered ones (nearly all of
    them) in three statements for all.
    """
    delivered = [a for a in attempts if a.outcome == DELIVERED]
    if delivered:
        _insert_attempt.execute(
            conn,
            [
                {
                    "notification_id": a.row.id,
                    "at": now,
                    "outcome": a.outcome,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                }
                for a in delivered
            ],
        )
        sent = [{"notification_id": a.row.id, "now": now} for a in delivered]
        _page_sent.execute(conn, sent)
        _cancelled_sent.execute(conn, sent)
        _insert_event.execute(
            conn,
            [
                entry(
                    a.row.incident_id,
                    now,
                    "notification.sent",
                    SYSTEM_ACTOR,
                    _attempt_detail(a.row, a.attempt),
                )
                for a in delivered
            ],
        )
    return [
        None if a.outcome == DELIVERED else _record_failure(conn, a, retry_base, now)
        for a in attempts
    ]


def _record_failure(
    conn: Connection, failed: Attempt, retry_base: timedelta, now: datetime
) -> JobSpec | None:
    """Store an attempt that was not delivered; return its retry, unless it failed for good."""
    row = failed.row
    _insert_attempt.execute(
        conn,
        {
            "notification_id": row.id,
            "at": now,
            "outcome": failed.outcome,
            "error": failed.error,
            "duration_ms": failed.duration_ms,
        },
    )
    next_at = next_attempt(failed, retry_base, now)
    if next_at is None:
        _page_failed.execute(conn, {"notification_id": row.id, "error": failed.error, "now": now})
        _insert_event.execute(
            conn,
            entry(
                row.incident_id,
                now,
                "notification.failed",
                SYSTEM_ACTOR,
                {**_attempt_detail(row, failed.attempt), "reason": failed.error or "unknown error"},
            ),
        )
        return None
    _page_retry.execute(
        conn, {"notification_id": row.id, "next_at": next_at, "error": failed.error, "now": now}
    )
    return delivery_job(row.id, next_at)


def _attempt_detail(row: Row[Any], attempt: int) -> dict[str, Any]:
    return {
        "notification": row.id,
        "user": row.user_name,
        "contact": row.contact_type,
        "kind": row.kind,
        "level": row.level,
        "repeat": row.repeat,
        "attempts": attempt,
    }


def pending_attempts(
    conn: Connection, due_by: datetime | None = None, limit: int | None = None
) -> list[tuple[int, datetime]]:
    """Return (notification id, next attempt) of every pending row (what the notification
    job store must hold), or of those due by `due_by`, soonest first, at most `limit`."""
    query = select(outbox.c.id, outbox.c.next_attempt_at).where(outbox.c.status == "pending")
    if due_by is not None:
        query = query.where(outbox.c.next_attempt_at <= due_by).order_by(outbox.c.next_attempt_at)
    rows = conn.execute(query.limit(limit))
    return [(notification_id, due) for notification_id, due in rows]


def list_notifications(
    conn: Connection, statuses: Sequence[str], incident_id: int | None, limit: int
) -> list[tuple[Row[Any], list[Row[Any]]]]:
    """Return notifications, newest first, each with its attempts (oldest first)."""
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if statuses:
        query = query.where(outbox.c.status.in_(list(statuses)))
    if incident_id is not None:
        query = query.where(outbox.c.incident_id == incident_id)
    rows = conn.execute(query).all()
    attempts: dict[int, list[Row[Any]]] = {r.id: [] for r in rows}
    if rows:
        for attempt in conn.execute(
            select(notification_attempts)
            .where(notification_attempts.c.notification_id.in_(list(attempts)))
            .order_by(notification_attempts.c.id)
        ):
            attempts[attempt.notification_id].append(attempt)
    return [(row, attempts[row.id]) for row in rows]


def notification_stats(conn: Connection, now: datetime) -> dict[str, int]:
    """Return the count of failed notifications (dead letters) and overdue pending ones."""
    failed = conn.execute(
        select(func.count()).select_from(outbox).where(outbox.c.status == "failed")
    ).scalar_one()
    overdue = conn.execute(
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_at < now - OVERDUE_AFTER)
    ).scalar_one()
    return {"failed_notifications": failed, "overdue_notifications": overdue}


def move_link_secret(conn: Connection, keep: Callable[[str | None], bytes]) -> bytes:
    """Return `keep(key)` for the link-signing key an older version kept in clear in
    `meta` (None when there is none), and delete that row in the same transaction.

    `keep` stores the key elsewhere (its file) and returns the key to use; when it raises,
    the transaction rolls back and the row stays, so the key is never lost in between.
    """
    value = conn.execute(select(meta.c.value).where(meta.c.key == "link_secret")).scalar()
    key = keep(None if value is None else str(value))
    if value is not None:
        conn.execute(delete(meta).where(meta.c.key == "link_secret"))
    return key
