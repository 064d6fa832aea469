"""End to end with a real Alertmanager driven by amtool, paging real HTTP receivers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from oncall.clock import system_clock
from oncall.web.keys import RUNTIME
from tests.support.alertmanager import Alertmanager
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def directory(receiver_url: str) -> str:
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts: [{{type: webhook, url: "{receiver_url}/alice"}}]
  - name: bob
    api_token: "{BOB_TOKEN}"
    contacts: [{{type: webhook, url: "{receiver_url}/bob"}}]
policies:
  - name: db
    levels:
      - {{notify: ["user:alice"], escalate_after: 2s}}
      - {{notify: ["user:bob"], escalate_after: 1h}}
  - name: other
    levels: [{{notify: ["user:bob"], escalate_after: 1h}}]
routes:
  - {{match: ['team="db"'], policy: db}}
  - {{policy: other}}
"""


@pytest.fixture
async def stack(make_client, receiver, tmp_path):
    base = receiver.url.removesuffix("/hook")
    client = await make_client(directory=directory(base), clock=system_clock)
    hook = str(client.make_url("/api/v1/integrations/alertmanager"))
    manager = Alertmanager(
        tmp_path,
        receivers=[
            {
                "name": "oncall",
                "webhook_configs": [
                    {
                        "url": hook,
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": AM_TOKEN}},
                    }
                ],
            }
        ],
        route={
            "receiver": "oncall",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
    )
    manager.start()
    yield client, manager, receiver
    manager.stop()


async def incidents(client: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/incidents", headers=ALICE)
    return (await response.json())["incidents"]


async def incident(client: Any, incident_id: int) -> dict[str, Any]:
    return await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()


def past() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _value(value: Any) -> Any:
    return value


def pages_to(receiver: Any, path: str, event: str = "incident.triggered") -> Any:
    async def check() -> Any:
        found = [json.loads(r.body) for r in receiver.requests if r.path == path]
        found = [b for b in found if b["event"] == event]
        return found or None

    return check


async def test_alertmanager_end_to_end(stack, key_prefix):
    client, manager, receiver = stack
    manager.add("alertname=DiskFull", "instance=db1", "severity=critical", "team=db")
    manager.add("alertname=DiskFull", "instance=db2", "severity=critical", "team=db")
    [first] = await eventually(lambda: _incidents_with(client, 1), what="incident")
    assert first["labels"]["alertname"] == "DiskFull" and first["labels"]["team"] == "db"
    assert first["policy"] == "db" and first["route"] == 'routes[0] {team="db"}'
    # level 1 pages alice at once; level 2 pages bob after its 2 s
    [page] = await eventually(pages_to(receiver, "/alice"), what="level 1 page")
    assert page["incident"]["id"] == first["id"] and page["level"] == 1
    [page] = await eventually(pages_to(receiver, "/bob"), what="level 2 page")
    assert page["level"] == 2
    details = await eventually(lambda: _with_alerts(client, first["id"], 2), what="db2")

    # A second group is a second incident, routed elsewhere.
    manager.add("alertname=CpuHigh", "instance=web1", "severity=warning", "team=web")
    both = await eventually(lambda: _incidents_with(client, 2), what="second incident")
    second = next(i for i in both if i["id"] != first["id"])
    assert second["policy"] == "other" and second["labels"]["alertname"] == "CpuHigh"

    # Partial resolve: db1 ends, the incident stays triggered.
    manager.add("alertname=DiskFull", "instance=db1", "severity=critical", "team=db", end=past())
    details = await eventually(lambda: _firing(client, first["id"], 1), what="partial")
    assert details["status"] == "triggered"
    # db2 ends: the incident resolves itself, its jobs go, everyone paged hears of it.
    manager.add("alertname=DiskFull", "instance=db2", "severity=critical", "team=db", end=past())
    details = await eventually(
        lambda: _status(client, first["id"], "resolved"), what="auto-resolve"
    )
    assert details["resolved_by"] == "system"
    jobs = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        pending = {k.decode() for k in jobs.hkeys(f"{key_prefix}:escalation:jobs")}
    finally:
        jobs.close()
    assert not any(k.startswith(f"incident:{first['id']}:") for k in pending)
    for person in ("/alice", "/bob"):
        await eventually(pages_to(receiver, person, "incident.resolved"), what=f"{person} told")
    _, alerts, _ = await client.app[RUNTIME].incidents.details(first["id"])
    assert sorted(a.status for a in alerts) == ["resolved", "resolved"]


async def _incidents_with(client: Any, count: int) -> Any:
    found = await incidents(client)
    return found if len(found) >= count else None


async def _with_alerts(client: Any, incident_id: int, count: int) -> Any:
    details = await incident(client, incident_id)
    return details if details["alert_count"] >= count else None


async def _firing(client: Any, incident_id: int, count: int) -> Any:
    details = await incident(client, incident_id)
    return details if details["firing_count"] == count else None


async def _status(client: Any, incident_id: int, status: str) -> Any:
    details = await incident(client, incident_id)
    return details if details["status"] == status else None
