"""Migration 0009: incidents get an urgency; those opened before it are high."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from oncall.db.models import incidents, metadata
from tests.db.test_migrations import _add_incident, downgrade_to, engine, upgrade_to

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database

__all__ = ["engine"]  # the fixture, shared with the other migration tests


def _urgency_differences(conn: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    return [diff for diff in found if "urgency" in repr(diff)]


def _columns(conn: Connection) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns("incidents")}


async def test_0009_makes_existing_incidents_high_and_downgrades(engine: Any) -> None:
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0008")
    async with engine.begin() as conn:
        incident_id = await conn.run_sync(_add_incident)
        assert "urgency" not in await conn.run_sync(_columns)
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        urgency = await conn.run_sync(
            lambda c: c.execute(
                select(incidents.c.urgency).where(incidents.c.id == incident_id)
            ).scalar_one()
        )
        assert urgency == "high"
        assert await conn.run_sync(_urgency_differences) == []
    await downgrade_to(engine, schema, "0008")
    async with engine.begin() as conn:
        assert "urgency" not in await conn.run_sync(_columns)
