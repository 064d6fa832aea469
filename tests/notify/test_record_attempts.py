"""Attempts finishing together are recorded in one unit of work (notify.store.record_attempts),
with the same rows, timeline and next attempts as recording each alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from oncall.db.models import incident_events, notification_attempts, notifications
from oncall.directory.parse import parse_directory
from oncall.ingest import store
from oncall.ingest.alertmanager import parse_webhook
from oncall.notify import outbox
from oncall.notify import store as store_notify
from oncall.notify.notifier import Notifier
from oncall.notify.retry import DELIVERED, PERMANENT, RETRY
from tests.support.db import sqlite_connection
from tests.support.factories import T0, fast_directory, make_alert, make_webhook
from tests.support.wiring import services

BASE = timedelta(seconds=2)
LATER = T0 + timedelta(seconds=3)
# Delivered, retried (twice: one with Retry-After), failed for good, delivered.
OUTCOMES = [
    (DELIVERED, None, None),
    (RETRY, "HTTP 503", None),
    (RETRY, "HTTP 429", timedelta(seconds=30)),
    (PERMANENT, "HTTP 404", None),
    (DELIVERED, None, None),
]


def _claimed_pages(conn: Connection) -> list[Any]:
    """Open one incident per outcome; return their claimed first pages."""
    directory = parse_directory(fast_directory(), {})
    runtime = services(directory)
    rows = []
    for n in range(len(OUTCOMES)):
        body = make_webhook([make_alert(f"host-{n}", alertname=f"Disk{n}")], alertname=f"Disk{n}")
        result = store.ingest_group(
            conn,
            "prometheus",
            parse_webhook(body),
            directory,
            T0,
            runtime.incidents,
            runtime.escalation,
        )
        [claimed] = result.followups.pages
        rows.append(claimed)
    return rows


def _attempts(claimed: list[Any]) -> list[outbox.Attempt]:
    return [
        outbox.Attempt(c.notification, c.attempt, outcome, error, 7, retry_after)
        for c, (outcome, error, retry_after) in zip(claimed, OUTCOMES, strict=True)
    ]


def _state(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
        for t in (notifications, notification_attempts, incident_events)
    }


def _record(tmp_path: Path, name: str, together: bool) -> tuple[list[Any], dict[str, Any]]:
    with sqlite_connection(tmp_path / f"{name}.db") as conn:
        attempts = _attempts(_claimed_pages(conn))
        if together:
            following = store_notify.record_attempts(conn, attempts, BASE, LATER)
        else:
            following = [store_notify.record_attempts(conn, [a], BASE, LATER)[0] for a in attempts]
        return following, _state(conn)


def test_recording_together_equals_recording_one_by_one(tmp_path: Path) -> None:
    alone, alone_state = _record(tmp_path, "alone", together=False)
    together, together_state = _record(tmp_path, "together", together=True)
    assert together == alone
    assert [d is None for d in together] == [True, False, False, True, True]
    assert together[2] is not None and together[2].run_date == LATER + timedelta(seconds=30)
    # The same rows. Attempts and timeline entries of different pages may be written in
    # another order (the delivered ones first; each page and incident has one here), so
    # those are compared without their ids.
    assert together_state["notifications"] == alone_state["notifications"]
    for table in ("notification_attempts", "incident_events"):
        assert sorted(r[1:] for r in together_state[table]) == sorted(
            r[1:] for r in alone_state[table]
        )
    sent = [r for r in together_state["notifications"] if r[8] == "sent"]
    assert len(sent) == 2
    outcomes = [r[3] for r in together_state["notification_attempts"]]
    assert sorted(outcomes) == ["delivered", "delivered", "permanent", "retry", "retry"]
    entries = [r[3] for r in together_state["incident_events"]]
    assert entries.count("notification.sent") == 2
    assert entries.count("notification.failed") == 1


class _CountingDatabase:
    """Stands in for Database.run: counts the units and runs them on a real connection."""

    def __init__(self, conn: Connection, fail: Exception | None = None) -> None:
        self.conn = conn
        self.fail = fail
        self.units: list[tuple[Any, int]] = []  # (work, attempts in the unit)

    async def run(self, work: Any, *args: Any) -> Any:
        self.units.append((work, len(args[0])))
        if self.fail is not None:
            raise self.fail
        return work(self.conn, *args)


def _notifier(db: Any) -> Notifier:
    notifier = services(parse_directory(fast_directory(), {}), db, lambda: LATER).notifier
    notifier.retry_base = BASE
    return notifier


async def test_attempts_finishing_in_one_loop_iteration_share_one_unit(
    sqlite_conn: Connection,
) -> None:
    attempts = _attempts(_claimed_pages(sqlite_conn))
    db = _CountingDatabase(sqlite_conn)
    notifier = _notifier(db)
    following = await asyncio.gather(*(notifier._record(a) for a in attempts))
    assert db.units == [(store_notify.record_attempts, len(attempts))]
    assert [d is None for d in following] == [True, False, False, True, True]
    # One finishing later gets a unit of its own.
    again = outbox.Attempt(attempts[1].row, 2, DELIVERED, None, 5, None)
    assert await notifier._record(again) is None
    assert db.units[-1] == (store_notify.record_attempts, 1)


async def test_a_failed_recording_reaches_every_sender(sqlite_conn: Connection) -> None:
    attempts = _attempts(_claimed_pages(sqlite_conn))
    notifier = _notifier(_CountingDatabase(sqlite_conn, fail=OSError("disk gone")))
    outcomes = await asyncio.gather(
        *(notifier._record(a) for a in attempts[:3]), return_exceptions=True
    )
    assert [type(o).__name__ for o in outcomes] == ["OSError"] * 3
    assert notifier._to_record == []
