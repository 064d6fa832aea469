"""0014: the table of sessions ended by logging out, as the models have it; a downgrade
drops it and keeps the passwords."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from oncall.db.models import metadata, passwords
from tests.db.test_migrations import downgrade_to, engine, upgrade_to
from tests.support.factories import T0

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database

__all__ = ["engine"]  # the fixture, shared with the other migration tests


def _differences(conn: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    return [diff for diff in found if "ended_sessions" in repr(diff)]


def _has_table(conn: Connection) -> bool:
    return inspect(conn).has_table("ended_sessions")


async def test_0014_adds_the_ended_sessions_and_downgrades_without_them(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0013")
    async with engine.begin() as conn:
        assert not await conn.run_sync(_has_table)
        await conn.execute(passwords.insert().values(user_name="alice", hash="h", changed_at=T0))
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        assert await conn.run_sync(_differences) == []
    await downgrade_to(engine, schema, "0013")
    async with engine.begin() as conn:
        assert not await conn.run_sync(_has_table)
        kept = await conn.execute(select(passwords.c.user_name))
        assert list(kept.scalars()) == ["alice"]
