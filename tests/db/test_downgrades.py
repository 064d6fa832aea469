"""Every downgrade keeps the rows of the tables it keeps: on SQLite a column is dropped in
place, never by rebuilding a table, whose drop would cascade through foreign keys to every
alert and page of every incident."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection

from oncall.db.models import alerts, notification_attempts, notifications
from tests.db.test_migration_0010 import _page
from tests.db.test_migrations import _add_incident, _alert, downgrade_to, engine, upgrade_to
from tests.support.factories import T0

__all__ = ["engine"]  # the fixture, shared with the other migration tests
# From the newest down: every revision a downgrade reaches, down to the first's schema.
REVISIONS = ["0010", "0009", "0008", "0007", "0006", "0005", "0004", "0003", "0002", "0001"]


def _count(conn: Connection, table: Any) -> int | None:
    """Return the rows of `table`, or None once a downgrade has dropped it."""
    if not inspect(conn).has_table(table.name):
        return None
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _add_incident_alert_page_and_attempt(conn: Connection) -> None:
    """One incident with an alert, a page and the page's attempt."""
    incident_id = _add_incident(conn)
    conn.execute(alerts.insert().values(_alert(incident_id)))
    page = conn.execute(
        notifications.insert().values(_page(incident_id)).returning(notifications.c.id)
    )
    conn.execute(
        notification_attempts.insert().values(
            notification_id=page.scalar_one(), at=T0, outcome="retry", duration_ms=5
        )
    )


async def test_each_downgrade_keeps_the_alerts_and_pages_it_does_not_drop(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0011")
    async with engine.begin() as conn:
        await conn.run_sync(_add_incident_alert_page_and_attempt)
    for revision in REVISIONS:
        await downgrade_to(engine, schema, revision)
        async with engine.begin() as conn:
            assert await conn.run_sync(_count, alerts) == 1, revision
            # the notification tables exist from 0003 on
            expected = None if revision < "0003" else 1
            assert await conn.run_sync(_count, notifications) == expected, revision
            assert await conn.run_sync(_count, notification_attempts) == expected, revision


async def test_upgrading_keeps_every_page_and_its_attempts(engine):
    # 0010 rebuilds the notifications table on SQLite (a constraint dropped): its drop
    # must not take the attempts with it.
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0009")
    async with engine.begin() as conn:
        await conn.run_sync(_add_incident_alert_page_and_attempt)
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        for table in (alerts, notifications, notification_attempts):
            assert await conn.run_sync(_count, table) == 1, table.name
