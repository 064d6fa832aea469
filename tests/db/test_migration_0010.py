"""Migration 0010: a level may be paged again, so the outbox takes a second page for the
same incident, level, user and contact; on downgrade the older key comes back."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from oncall.db.models import metadata, notifications
from tests.db.test_migrations import _add_incident, downgrade_to, engine, upgrade_to
from tests.support.factories import T0

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database

__all__ = ["engine"]  # the fixture, shared with the other migration tests


def _page(incident_id: int) -> dict[str, Any]:
    """A level 1 page to alice's first contact (the columns every revision has)."""
    return {
        "incident_id": incident_id,
        "kind": "trigger",
        "level": 1,
        "repeat": 0,
        "user_name": "alice",
        "contact_index": 0,
        "contact_type": "email",
        "status": "sent",
        "attempts": 1,
        "created_at": T0,
        "updated_at": T0,
    }


def _notification_differences(conn: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    return [diff for diff in found if "notifications" in repr(diff)]


async def test_0010_takes_a_level_paged_again_and_downgrades_to_the_unique_key(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0009")
    async with engine.begin() as conn:
        incident_id = await conn.run_sync(_add_incident, "triggered")
        await conn.execute(insert(notifications).values(_page(incident_id)))
    with pytest.raises(Exception, match=r"(?i)unique"):  # 0009: one page per level and contact
        async with engine.begin() as conn:
            await conn.execute(insert(notifications).values(_page(incident_id)))
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        await conn.execute(insert(notifications).values(_page(incident_id)))
        ids = list((await conn.execute(select(notifications.c.id))).scalars())
        assert len(ids) == 2
        assert await conn.run_sync(_notification_differences) == []
        await conn.execute(delete(notifications).where(notifications.c.id == max(ids)))
    await downgrade_to(engine, schema, "0009")
    with pytest.raises(Exception, match=r"(?i)unique"):
        async with engine.begin() as conn:
            await conn.execute(insert(notifications).values(_page(incident_id)))
