"""Migration 0012: the maintenance windows table and the incident's `maintenance` column;
on downgrade both go and every incident keeps its pages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, inspect, select

from oncall.db.models import notifications
from tests.db.test_migration_0010 import _page
from tests.db.test_migration_0011 import _incident_differences
from tests.db.test_migrations import _add_incident, downgrade_to, engine, upgrade_to

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database

__all__ = ["engine"]  # the fixture, shared with the other migration tests


def _shape(conn: Any) -> tuple[bool, bool]:
    found = inspect(conn)
    columns = {c["name"] for c in found.get_columns("incidents")}
    return "maintenance" in columns, found.has_table("maintenance_windows")


async def test_0012_adds_maintenance_and_downgrades_keeping_every_page(engine: Any) -> None:
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0011")
    async with engine.begin() as conn:
        assert await conn.run_sync(_shape) == (False, False)
        incident_id = await conn.run_sync(_add_incident, "acknowledged")
        await conn.execute(insert(notifications).values(_page(incident_id)))
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        assert await conn.run_sync(_shape) == (True, True)
        assert await conn.run_sync(_incident_differences) == []
    await downgrade_to(engine, schema, "0011")
    async with engine.begin() as conn:
        assert await conn.run_sync(_shape) == (False, False)
        pages = (await conn.execute(select(notifications.c.incident_id))).scalars().all()
        assert pages == [incident_id]
