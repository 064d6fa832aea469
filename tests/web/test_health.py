"""/health names each dependency; the probes and reload behave as Alertmanager's do."""

from __future__ import annotations

import socket
import sqlite3

import pytest

from tests.support.db import snapshot
from tests.support.factories import AM_AUTH, make_alert, make_webhook


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_health_is_ok_with_one_entry_per_dependency(client):
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "scheduler"}
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["redis"] == {"status": "ok"}
    scheduler = body["checks"]["scheduler"]
    assert scheduler["status"] == "ok" and scheduler["running"] is True
    assert scheduler["pending"] == {"escalation": 0, "notification": 0}
    assert scheduler["overdue_steps"] == 0 and scheduler["failed_steps"] == 0
    assert scheduler["last_reconcile"] is not None


async def test_health_is_503_naming_redis_when_redis_is_unreachable(make_client):
    client = await make_client(redis_port=str(free_port()))
    response = await client.get("/health")
    body = await response.json()
    assert response.status == 503
    assert "redis" in body["failing"]
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["error"]
    # Alerts are still accepted: Redis only holds timers.
    response = await client.post(
        "/api/v1/integrations/alertmanager", json=make_webhook([make_alert("db1")]), headers=AM_AUTH
    )
    assert response.status == 200
    assert (await client.get("/-/ready")).status == 200


async def test_the_probes_answer(client):
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200


@pytest.mark.parametrize("backend", ["sqlite"])  # locks the SQLite file from outside
async def test_a_busy_database_gives_503_so_alertmanager_retries(
    make_settings, make_client, backend
):
    client = await make_client()
    before = await snapshot(client)
    path = make_settings().database.url.split(":///", 1)[1]
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = await client.post(
            "/api/v1/integrations/alertmanager",
            json=make_webhook([make_alert("db1")]),
            headers=AM_AUTH,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "database" in (await response.json())["error"]
    assert await snapshot(client) == before


async def test_reload_activates_a_valid_file_and_keeps_the_old_one_on_error(client, directory_file):
    original = directory_file.read_text()
    directory_file.write_text(
        original.replace("name: bob", "name: robert").replace('"user:bob"', '"user:robert"')
    )
    response = await client.post("/-/reload")
    assert response.status == 200
    from oncall.web.keys import DIRECTORY

    assert "robert" in client.app[DIRECTORY].current.users

    directory_file.write_text(original.replace("escalate_after: 5m", "escalate_after: soon"))
    response = await client.post("/-/reload")
    body = await response.json()
    assert response.status == 400
    assert any("escalate_after" in p for p in body["problems"])
    assert "robert" in client.app[DIRECTORY].current.users  # the old file stays active
