"""/health: the overall status for anyone, each dependency's check for the metrics token or
an admin; the probes; and `/-/reload`, an admin's, parsed off the event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import threading

import pytest

from oncall.directory import holder
from oncall.web.keys import DIRECTORY
from tests.support.db import snapshot
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    DIRECTORY_YAML,
    make_alert,
    make_webhook,
)
from tests.support.ops import OPS

# alice is an admin here; bob stays a responder.
ADMIN_DIRECTORY = DIRECTORY_YAML.replace(
    "    full_name: Alice Example\n", "    full_name: Alice Example\n    role: admin\n", 1
)
ADMIN = {"Authorization": f"Bearer {ALICE_TOKEN}"}
RESPONDER = {"Authorization": f"Bearer {BOB_TOKEN}"}
WRONG = {"Authorization": "Bearer wrong-token-0123456789abcdefghijklmnopqrstuv"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_health_is_ok_with_one_entry_per_dependency(client):
    response = await client.get("/health", headers=OPS)
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "scheduler", "cluster"}
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["redis"] == {"status": "ok"}
    scheduler = body["checks"]["scheduler"]
    assert scheduler["status"] == "ok" and scheduler["running"] is True
    assert scheduler["pending"] == {"escalation": 0, "notification": 0}
    assert scheduler["overdue_steps"] == 0 and scheduler["failed_steps"] == 0
    assert scheduler["last_reconcile"] is not None
    # One instance alone leads, on either backend.
    cluster = body["checks"]["cluster"]
    assert cluster["status"] == "ok" and cluster["role"] == "leader"
    assert cluster["leader"] == cluster["instance"] and cluster["term"] >= 1
    assert cluster["leader_id"] == cluster["instance_id"].split()[0]
    assert cluster["since"] is not None


async def test_anonymous_health_tells_only_the_overall_status(make_client):
    # Redis unreachable: the checks would name its host and port.
    port = free_port()
    client = await make_client(redis_port=str(port))
    response = await client.get("/health")
    assert response.status == 503
    assert await response.json() == {"status": "fail"}
    assert str(port) not in await response.text()


async def test_health_details_need_the_metrics_token_or_an_admins_token(make_client):
    client = await make_client(directory=ADMIN_DIRECTORY)
    assert await (await client.get("/health")).json() == {"status": "ok"}
    for headers in (OPS, ADMIN):
        response = await client.get("/health", headers=headers)
        assert response.status == 200
        checks = set((await response.json())["checks"])
        assert checks == {"database", "redis", "scheduler", "cluster"}
    # A credential that does not open the details is refused, not quietly ignored.
    assert (await client.get("/health", headers=RESPONDER)).status == 403
    assert (await client.get("/health", headers=WRONG)).status == 401


async def test_health_is_503_naming_redis_when_redis_is_unreachable(make_client):
    client = await make_client(redis_port=str(free_port()))
    response = await client.get("/health", headers=OPS)
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


async def test_reload_needs_an_admins_token(make_client, directory_file):
    client = await make_client(directory=ADMIN_DIRECTORY)
    directory_file.write_text(
        ADMIN_DIRECTORY.replace("name: bob", "name: robert").replace('"user:bob"', '"user:robert"')
    )
    for headers, status in (({}, 401), (WRONG, 401), (RESPONDER, 403), (OPS, 401)):
        response = await client.post("/-/reload", headers=headers)
        assert response.status == status, headers
        assert "bob" in client.app[DIRECTORY].current.users  # nothing was reloaded
    response = await client.post("/-/reload", headers=ADMIN)
    assert (response.status, await response.json()) == (200, {"status": "ok"})
    assert "robert" in client.app[DIRECTORY].current.users


async def test_reload_activates_a_valid_file_and_keeps_the_old_one_on_error(
    make_client, directory_file
):
    client = await make_client(directory=ADMIN_DIRECTORY)
    directory_file.write_text(
        ADMIN_DIRECTORY.replace("name: bob", "name: robert").replace('"user:bob"', '"user:robert"')
    )
    response = await client.post("/-/reload", headers=ADMIN)
    assert response.status == 200
    assert "robert" in client.app[DIRECTORY].current.users

    directory_file.write_text(ADMIN_DIRECTORY.replace("escalate_after: 5m", "escalate_after: soon"))
    response = await client.post("/-/reload", headers=ADMIN)
    assert response.status == 400
    assert "robert" in client.app[DIRECTORY].current.users  # the old file stays active

    # Both are admin actions, recorded with the admin (and nothing of the file).
    response = await client.get("/api/v1/audit", headers=ADMIN)
    entries = [
        (e["actor"], e["action"], e["detail"]["outcome"])
        for e in (await response.json())["entries"]
    ]
    assert entries == [
        ("alice", "directory.reload", "rejected"),
        ("alice", "directory.reload", "applied"),
    ]


async def test_a_broken_file_is_told_to_the_log_and_not_to_the_caller(
    make_client, directory_file, caplog
):
    client = await make_client(directory=ADMIN_DIRECTORY)
    # A YAML syntax error on the line of a token: the parser quotes that line.
    broken = ADMIN_DIRECTORY.replace(f'token: "{AM_TOKEN}"}}', f'token: "{AM_TOKEN}"}}}}')
    directory_file.write_text(broken)
    with caplog.at_level(logging.ERROR, logger="oncall"):
        response = await client.post("/-/reload", headers=ADMIN)
    assert response.status == 400
    assert await response.json() == {"error": "invalid directory file, see the log"}
    text = await response.text()
    assert AM_TOKEN[:12] not in text and "prometheus" not in text
    [record] = [r for r in caplog.records if "reload rejected" in r.getMessage()]
    assert record.problems  # the problems themselves are in the log


async def test_the_event_loop_keeps_serving_while_a_reload_parses(
    make_client, directory_file, monkeypatch
):
    client = await make_client(directory=ADMIN_DIRECTORY)
    loop_thread = threading.get_ident()
    parsing, release = threading.Event(), threading.Event()
    parsed_in: list[int] = []
    original = holder.load_directory

    def slow_parse(*args, **kwargs):
        parsed_in.append(threading.get_ident())
        parsing.set()
        # Bounded only so that code parsing on the loop fails instead of hanging.
        release.wait(timeout=10)
        return original(*args, **kwargs)

    monkeypatch.setattr(holder, "load_directory", slow_parse)
    reload = asyncio.ensure_future(client.post("/-/reload", headers=ADMIN))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, parsing.wait, 10)
    # The parse is under way in its thread; the loop still answers.
    assert not release.is_set()
    assert (await client.get("/-/healthy")).status == 200
    release.set()
    response = await reload
    assert response.status == 200
    assert parsed_in and parsed_in[0] != loop_thread
