"""A database error that is not the request's fault is a 503 naming the database, logged,
and /health reports `database` until its check succeeds again (both backends)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from oncall.db.models import incident_events
from oncall.web.keys import RUNTIME
from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.ops import OPS

URL = "/api/v1/integrations/alertmanager"


def drop_timeline(conn: Connection) -> None:
    conn.execute(text("DROP TABLE incident_events"))


def restore_timeline(conn: Connection) -> None:
    incident_events.create(conn)


async def test_a_missing_table_is_a_503_that_health_reports(client: Any, caplog: Any) -> None:
    db = client.app[RUNTIME].db
    assert (await client.get("/health", headers=OPS)).status == 200
    # A real failure the input has nothing to do with: the timeline table is gone.
    await db.run(drop_timeline)
    with caplog.at_level(logging.WARNING, logger="oncall"):
        response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    assert response.status == 503, await response.text()
    body = await response.json()
    assert "database" in body["error"] and "incident_events" not in body["error"]
    assert response.headers["Retry-After"]
    assert any("database" in record.getMessage() for record in caplog.records)

    response = await client.get("/health", headers=OPS)
    assert response.status == 503
    health = await response.json()
    assert "database" in health["failing"]
    assert health["checks"]["database"]["status"] == "fail"
    assert (await client.get("/-/ready")).status == 503

    # The table is back: the next check succeeds and the retried delivery is accepted.
    await db.run(restore_timeline)
    response = await client.get("/health", headers=OPS)
    assert (await response.json())["checks"]["database"]["status"] == "ok"
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    assert response.status == 200
    assert len((await response.json())["incidents"]) == 1
