"""0015: alerts' structured context and the change events table, as the models have them;
alerts stored before keep their annotations and have no context; a downgrade writes the
context back into the annotations, as the older code reads it, and keeps every alert."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Connection

from oncall.db.models import alerts, change_events, metadata
from tests.db.test_migrations import _add_incident, _alert, downgrade_to, engine, upgrade_to
from tests.support.factories import T0

# Each starts from an empty database and migrates it step by step.
pytestmark = pytest.mark.empty_database

__all__ = ["engine"]  # the fixture, shared with the other migration tests
OLD = {"summary": "Disk full", "links": '[{"href": "https://r.example.com"}]'}
DETAILS = {"free": "2%", "disks": [{"name": "sda", "used": 0.98}]}
LINKS = [{"href": "https://r.example.com/runbook", "text": "Runbook"}]


def _differences(conn: Connection) -> list[Any]:
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    return [
        diff
        for diff in found
        if "change_events" in repr(diff)
        or any(name in repr(diff) for name in ("custom_details", "'links'", "'images'"))
    ]


def _columns(conn: Connection) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns("alerts")}


def _has_table(conn: Connection) -> bool:
    return inspect(conn).has_table("change_events")


def _add_alerts(conn: Connection) -> int:
    """An incident with an alert of the older shape (context as annotation text)."""
    incident_id = _add_incident(conn)
    conn.execute(insert(alerts).values(_alert(incident_id, annotations=OLD)))
    return incident_id


def _alert_rows(conn: Connection) -> list[Any]:
    return list(conn.execute(select(alerts).order_by(alerts.c.id)).all())


async def test_0015_adds_the_context_and_change_events_and_downgrades_keeping_them(engine):
    engine, settings = engine
    schema = settings.database.schema
    await upgrade_to(engine, schema, "0014")
    async with engine.begin() as conn:
        assert not await conn.run_sync(_has_table)
        incident_id = await conn.run_sync(_add_alerts)
    await upgrade_to(engine, schema, "head")
    async with engine.begin() as conn:
        assert await conn.run_sync(_differences) == []
        [old] = await conn.run_sync(_alert_rows)
        # Left as it was: the pages still read the annotation text of such rows.
        assert (old.annotations, old.custom_details, old.links, old.images) == (
            OLD,
            None,
            None,
            None,
        )
        await conn.execute(
            insert(alerts).values(
                _alert(
                    incident_id,
                    fingerprint="fp2",
                    annotations={"summary": "Disk full"},
                    custom_details=DETAILS,
                    links=LINKS,
                )
            )
        )
        await conn.execute(
            insert(change_events).values(integration="pd", summary="Deployed", received_at=T0)
        )
    await downgrade_to(engine, schema, "0014")
    async with engine.begin() as conn:
        assert not await conn.run_sync(_has_table)
        assert not {"custom_details", "links", "images"} & await conn.run_sync(_columns)
        rows = (await conn.execute(select(alerts.c.fingerprint, alerts.c.annotations))).all()
    annotations = dict(rows)
    assert annotations["fp1"] == OLD
    assert json.loads(annotations["fp2"]["custom_details"]) == DETAILS
    assert json.loads(annotations["fp2"]["links"]) == LINKS
    assert "images" not in annotations["fp2"]  # it had none
