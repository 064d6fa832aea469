"""Migrations upgrade a database that already holds data (on both backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from oncall.db.engine import make_engine
from oncall.db.migrate import MIGRATIONS, migrating
from oncall.db.models import alerts, audit_log, calendar_feeds, incidents, metadata
from oncall.settings import Settings
from tests.support.factories import T0

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade_to(engine: AsyncEngine, schema: str, revision: str) -> None:
    """Apply the migrations up to `revision`, as oncall.db.migrate does up to head."""
    async with migrating(engine, schema) as conn:
        await conn.run_sync(_upgrade_to, revision)


@pytest.fixture
async def engine(make_settings: Any) -> AsyncIterator[tuple[AsyncEngine, Settings]]:
    settings = make_settings()
    engine = make_engine(settings.database)
    yield engine, settings
    await engine.dispose()


def _add_incident(conn: Connection, status: str = "resolved") -> int:
    """Add an incident of the columns every revision has; return its id."""
    incident_id: int = conn.execute(
        insert(incidents)
        .values(
            integration="prometheus",
            dedup_key="g",
            status=status,
            title="DiskFull",
            severity="critical",
            labels={},
            annotations={},
            created_at=T0,
            updated_at=T0,
        )
        .returning(incidents.c.id)
    ).scalar_one()
    return incident_id


def _alert(incident_id: int, **values: Any) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "integration": "prometheus",
        "fingerprint": "fp1",
        "starts_at": T0,
        "status": "firing",
        "labels": {},
        "annotations": {},
        "created_at": T0,
        "updated_at": T0,
        **values,
    }


async def test_0006_keeps_stored_alerts_as_generation_0_and_keys_on_the_generation(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0005")

    def before(conn: Connection) -> int:
        incident_id = _add_incident(conn)
        # No generation given: the 0005 table has no such column yet.
        conn.execute(insert(alerts).values(_alert(incident_id)))
        return incident_id

    # The engine's connections use the test's schema (make_engine sets the search path).
    async with engine.begin() as conn:
        incident_id = await conn.run_sync(before)
    await upgrade_to(engine, schema, "head")

    def after(conn: Connection) -> list[int]:
        conn.execute(insert(alerts).values(_alert(incident_id, generation=1)))
        return list(conn.execute(select(alerts.c.generation).order_by(alerts.c.id)).scalars())

    async with engine.begin() as conn:
        assert await conn.run_sync(after) == [0, 1]
    with pytest.raises(Exception, match=r"(?i)unique"):
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda c: c.execute(insert(alerts).values(_alert(incident_id, generation=1)))
            )


def _downgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def downgrade_to(engine: AsyncEngine, schema: str, revision: str) -> None:
    """Revert the migrations down to `revision`."""
    async with migrating(engine, schema) as conn:
        await conn.run_sync(_downgrade_to, revision)


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _schema_differences(conn: Connection) -> list[Any]:
    """Return how the tables 0008 creates differ from the models (empty: alike)."""
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    return [diff for diff in found if "calendar_feeds" in repr(diff) or "audit_log" in repr(diff)]


async def test_0008_adds_the_feed_and_audit_tables_and_removes_them_on_downgrade(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0007")
    async with engine.begin() as conn:
        incident_id = await conn.run_sync(_add_incident)
        assert not {"calendar_feeds", "audit_log"} & await conn.run_sync(_tables)
    await upgrade_to(engine, schema, "head")

    def use(conn: Connection) -> list[Any]:
        conn.execute(
            insert(calendar_feeds).values(
                user_name="alice", secret_sha256="0" * 64, created_at=T0, created_by="alice"
            )
        )
        conn.execute(
            insert(audit_log).values(
                at=T0, actor="dana", action="override.delete", subject="s", detail={"a": 1}
            )
        )
        return list(conn.execute(select(audit_log.c.detail)).scalars())

    async with engine.begin() as conn:
        assert await conn.run_sync(use) == [{"a": 1}]
        assert await conn.run_sync(_schema_differences) == []
    await downgrade_to(engine, schema, "0007")
    async with engine.begin() as conn:
        assert not {"calendar_feeds", "audit_log"} & await conn.run_sync(_tables)
        ids = await conn.run_sync(lambda c: list(c.execute(select(incidents.c.id)).scalars()))
        assert ids == [incident_id]
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        assert {"calendar_feeds", "audit_log"} <= await conn.run_sync(_tables)
