"""Migration 0011: an incident row holds its snooze's end and its acknowledgement's
timeout; on downgrade both columns go and the incident keeps its pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, update
from sqlalchemy.engine import Connection

from oncall.db.models import incidents, metadata, notifications
from tests.db.test_migration_0010 import _page
from tests.db.test_migrations import _add_incident, downgrade_to, engine, upgrade_to
from tests.support.factories import T0

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database

_TIMERS = {"snoozed_until", "ack_timeout_at"}

__all__ = ["engine"]  # the fixture, shared with the other migration tests


def _columns(conn: Connection) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns("incidents")}


def _incident_differences(conn: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    return [diff for diff in found if "incidents" in repr(diff)]


async def test_0011_adds_the_incident_timers_and_downgrades_without_them(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0010")
    async with engine.begin() as conn:
        assert not (await conn.run_sync(_columns)) & _TIMERS
        incident_id = await conn.run_sync(_add_incident, "acknowledged")
        await conn.execute(insert(notifications).values(_page(incident_id)))
    await upgrade_to(engine, schema, "head")
    until = T0 + timedelta(hours=1)
    async with engine.begin() as conn:
        assert await conn.run_sync(_columns) >= _TIMERS
        assert await conn.run_sync(_incident_differences) == []
        row = (
            await conn.execute(
                select(incidents.c.snoozed_until, incidents.c.ack_timeout_at).where(
                    incidents.c.id == incident_id
                )
            )
        ).one()
        assert tuple(row) == (None, None)  # rows from before have nothing pending
        await conn.execute(
            update(incidents).where(incidents.c.id == incident_id).values(snoozed_until=until)
        )
        stored = (
            await conn.execute(
                select(incidents.c.snoozed_until).where(incidents.c.id == incident_id)
            )
        ).scalar_one()
        assert stored == until
    await downgrade_to(engine, schema, "0010")
    async with engine.begin() as conn:
        assert not (await conn.run_sync(_columns)) & _TIMERS
        # The incident keeps its pages: SQLite must not rebuild (drop) the incidents table,
        # whose drop would cascade to every page and alert.
        pages = (await conn.execute(select(notifications.c.incident_id))).scalars().all()
        assert pages == [incident_id]
