"""Heartbeats (dead man's switches): a missed deadline opens an incident that escalates; the
next ping resolves it; the deadline survives a restart."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from oncall.clock import system_clock
from oncall.db.engine import Database, make_engine
from oncall.db.models import incidents as incidents_table
from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError
from oncall.settings import load_settings
from oncall.web.keys import RUNTIME
from tests.support.db import count_rows, snapshot
from tests.support.factories import ALICE_TOKEN, AM_AUTH, fast_directory, make_alert, make_webhook
from tests.support.process import ServiceProcess
from tests.support.waiting import eventually

HB_TOKEN = "hb-token-0123456789abcdefghijklmnopqrstuv"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def directory(interval: str = "2s", grace: str = "1s") -> str:
    return fast_directory(levels=("1h", "1h")).replace(
        "integrations:\n",
        f"""integrations:
  - {{name: backups, type: heartbeat, token: "{HB_TOKEN}", interval: {interval},
     grace: {grace}, watchdog_of: prometheus}}
""",
    )


async def ping(client: Any, url: str = "") -> int:
    target = f"{url}/api/v1/heartbeats/backups"
    response = await client.post(target, headers={"Authorization": f"Bearer {HB_TOKEN}"})
    return response.status


async def heartbeat_incidents(client: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/incidents", headers=ALICE)
    return [i for i in (await response.json())["incidents"] if i["integration"] == "backups"]


async def _opened(client: Any) -> Any:
    found = await heartbeat_incidents(client)
    return found or None


async def test_a_stopped_heartbeat_opens_an_incident_that_escalates_and_a_ping_resolves_it(
    make_client,
):
    client = await make_client(directory=directory(), clock=system_clock)
    assert await ping(client) == 200
    assert await heartbeat_incidents(client) == []
    [incident] = await eventually(lambda: _opened(client), what="missed heartbeat")
    assert incident["title"].startswith("No heartbeat from backups since")
    assert incident["labels"] == {
        "alertname": "HeartbeatMissed",
        "heartbeat": "backups",
        "severity": "critical",
    }
    await eventually(lambda: _escalated(client, incident["id"]), what="level 1 paged")
    assert await ping(client) == 200
    [incident] = await heartbeat_incidents(client)
    assert incident["status"] == "resolved" and incident["resolved_by"] == "backups"
    # Missing again opens a new incident: every miss is its own.
    found = await eventually(lambda: _count(client, 2), what="second miss")
    assert [i["status"] for i in found] == ["triggered", "resolved"]


async def _escalated(client: Any, incident_id: int) -> Any:
    _, _, events = await client.app[RUNTIME].incidents.details(incident_id)
    return [e for e in events if e.type == "escalation.level"] or None


async def _count(client: Any, count: int) -> Any:
    found = await heartbeat_incidents(client)
    return found if len(found) >= count else None


async def test_a_ping_needs_the_heartbeats_own_token(make_client):
    client = await make_client(directory=directory())
    before = await snapshot(client)
    for headers in ({}, AM_AUTH, {"Authorization": "Bearer wrong-token-123"}):
        response = await client.post("/api/v1/heartbeats/backups", headers=headers)
        assert response.status == 401
    assert await snapshot(client) == before


async def test_the_watchdog_alert_pings_and_never_becomes_an_incident(make_client):
    client = await make_client(directory=directory(interval="1h"), clock=system_clock)
    watchdog = make_alert("am1", alertname="Watchdog")
    response = await client.post(
        "/api/v1/integrations/alertmanager",
        headers=AM_AUTH,
        json=make_webhook([watchdog], alertname="Watchdog"),
    )
    assert response.status == 200 and (await response.json())["incidents"] == []

    def read(conn: Any) -> Any:
        from oncall.db.models import heartbeats

        return conn.execute(select(heartbeats.c.name, heartbeats.c.last_ping_at)).all()

    [(name, last_ping)] = await client.app[RUNTIME].db.run(read)
    assert name == "backups" and last_ping is not None
    assert (await client.app[RUNTIME].db.run(count_rows))["incidents"] == 0
    mixed = make_webhook([watchdog, make_alert("db1")])
    response = await client.post("/api/v1/integrations/alertmanager", headers=AM_AUTH, json=mixed)
    [incident_id] = (await response.json())["incidents"]
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    assert [a["labels"]["alertname"] for a in details["alerts"]] == ["DiskFull"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ((" interval: 2s,", ""), "interval: required for a heartbeat"),
        (
            ("watchdog_of: prometheus", "watchdog_of: nowhere"),
            "'nowhere' is not an alertmanager integration",
        ),
        (("interval: 2s", "interval: 0s"), "interval: must be above zero"),
    ],
)
def test_heartbeat_settings_are_checked(change, expected):
    with pytest.raises(ConfigError) as caught:
        parse_directory(directory().replace(*change), {})
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


async def test_a_restart_does_not_lose_the_deadline(tmp_path, database_env, key_prefix):
    path = tmp_path / "hb.yaml"
    path.write_text(directory(interval="2s", grace="1s"))
    env = {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(path),
        "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "1s",
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    db = Database(
        make_engine(
            load_settings(
                {
                    "ONCALL_SETTINGS": "/dev/null",
                    **{k: v for k, v in env.items() if k.startswith("ONCALL_DATABASE")},
                }
            ).database
        )
    )

    async def opened() -> Any:
        def read(conn: Any) -> Any:
            return conn.execute(
                select(incidents_table.c.id).where(incidents_table.c.integration == "backups")
            ).all()

        return await db.run(read) or None

    try:
        await service.start()
        async with aiohttp.ClientSession() as session:
            assert await ping(session, service.url) == 200
        service.kill()  # the deadline is armed; nobody is running to watch it
        await service.start()
        found = await eventually(opened, what="the missed deadline after restart")
        assert len(found) == 1
    finally:
        service.stop()
        await db.close()
