"""PagerDuty Events API v2: actions, dedup semantics, PagerDuty's error answers, and
Alertmanager's pagerduty_configs as a real client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oncall.clock import system_clock
from tests.support.alertmanager import Alertmanager
from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, DIRECTORY_YAML
from tests.support.waiting import eventually

EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
SLOW_TOKEN = "ev-slow-0123456789abcdefghijklmnopqrstuv"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
DIRECTORY = DIRECTORY_YAML.replace(
    "integrations:\n",
    f"""integrations:
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
  - {{name: slow, type: events_v2, token: "{SLOW_TOKEN}", rate_limit: 3/1m}}
""",
)


def trigger(**changes: Any) -> dict[str, Any]:
    body = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "disk-db1",
        "payload": {
            "summary": "Disk full on db1",
            "source": "db1",
            "severity": "critical",
            "component": "postgres",
            "custom_details": {"free": "2%"},
        },
        "client": "tests",
        "client_url": "http://monitor.example.com",
    }
    body.update(changes)
    return body


async def send(client: Any, body: Any, path: str = "/v2/enqueue") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(path, data=data, headers={"Content-Type": "application/json"})
    return response.status, await response.json()


async def incidents(client: Any) -> list[dict[str, Any]]:
    return (await (await client.get("/api/v1/incidents", headers=ALICE)).json())["incidents"]


async def test_trigger_acknowledge_resolve(make_client):
    client = await make_client(directory=DIRECTORY)
    status, body = await send(client, trigger())
    assert (status, body) == (
        202,
        {"status": "success", "message": "Event processed", "dedup_key": "disk-db1"},
    )
    [incident] = await incidents(client)
    assert (incident["title"], incident["severity"]) == ("Disk full on db1", "critical")
    assert incident["labels"]["component"] == "postgres" and incident["integration"] == "pd"
    assert incident["policy"] == "default"  # routed like any incident (severity="critical")
    status, _ = await send(client, trigger(), path="/api/v1/integrations/events")
    assert status == 202 and len(await incidents(client)) == 1  # joins the open incident
    await send(
        client, {"routing_key": EV_TOKEN, "event_action": "acknowledge", "dedup_key": "disk-db1"}
    )
    [incident] = await incidents(client)
    assert (incident["status"], incident["acknowledged_by"]) == ("acknowledged", "pd")
    await send(
        client, {"routing_key": EV_TOKEN, "event_action": "resolve", "dedup_key": "disk-db1"}
    )
    [incident] = await incidents(client)
    assert (incident["status"], incident["resolved_by"]) == ("resolved", "pd")
    # After a resolve, the same dedup_key opens a new incident.
    await send(client, trigger())
    found = await incidents(client)
    assert [i["status"] for i in found] == ["triggered", "resolved"]


async def test_a_trigger_without_dedup_key_gets_one(make_client):
    client = await make_client(directory=DIRECTORY)
    body = trigger()
    del body["dedup_key"]
    status, answer = await send(client, body)
    assert status == 202 and len(answer["dedup_key"]) == 32
    [incident] = await incidents(client)
    assert incident["dedup_key"] == answer["dedup_key"]


async def test_acting_on_an_unknown_dedup_key_changes_nothing(make_client):
    client = await make_client(directory=DIRECTORY)
    before = await snapshot(client)
    for action in ("acknowledge", "resolve"):
        status, _ = await send(
            client, {"routing_key": EV_TOKEN, "event_action": action, "dedup_key": "never-seen"}
        )
        assert status == 202
    assert await snapshot(client) == before


# (case, body, expected fragment of an error)
BAD = [
    ("not JSON", b"{", "not valid JSON"),
    ("not an object", [1], "not a JSON object"),
    ("no routing key", trigger(routing_key=None), "routing_key"),
    ("wrong routing key", trigger(routing_key="nope-nope-nope"), "Invalid routing key"),
    ("unknown action", trigger(event_action="escalate"), "event_action"),
    ("no payload", trigger(payload=None), "payload"),
    ("no summary", trigger(payload={"source": "x", "severity": "info"}), "payload.summary"),
    (
        "summary too long",
        trigger(payload={"summary": "x" * 1025, "source": "x", "severity": "info"}),
        "longer than 1024",
    ),
    ("no source", trigger(payload={"summary": "x", "severity": "info"}), "payload.source"),
    (
        "bad severity",
        trigger(payload={"summary": "x", "source": "x", "severity": "fatal"}),
        "payload.severity",
    ),
    (
        "bad timestamp",
        trigger(
            payload={"summary": "x", "source": "x", "severity": "info", "timestamp": "yesterday"}
        ),
        "payload.timestamp",
    ),
    ("dedup_key too long", trigger(dedup_key="k" * 256), "dedup_key"),
    (
        "resolve without dedup_key",
        {"routing_key": EV_TOKEN, "event_action": "resolve"},
        "dedup_key",
    ),
    ("links not a list", trigger(links={"href": "x"}), "links"),
    (
        "component not a string",
        trigger(payload={"summary": "x", "source": "x", "severity": "info", "component": 3}),
        "payload.component",
    ),
]


@pytest.mark.parametrize(("case", "body", "fragment"), BAD, ids=[b[0] for b in BAD])
async def test_a_bad_event_gets_400_with_its_errors_and_writes_nothing(
    make_client, case, body, fragment
):
    client = await make_client(directory=DIRECTORY)
    before = await snapshot(client)
    status, answer = await send(client, body)
    assert status == 400 and answer["status"] == "invalid event"
    assert any(fragment in error for error in answer["errors"]), answer
    assert await snapshot(client) == before


async def test_an_oversize_event_gets_413(make_client):
    client = await make_client(directory=DIRECTORY)
    body = trigger(
        payload={
            "summary": "x",
            "source": "x",
            "severity": "info",
            "custom_details": {"blob": "x" * 600_000},
        }
    )
    status, _ = await send(client, body)
    assert status == 413


async def test_deep_json_gets_pagerdutys_400_naming_the_problem(make_client):
    client = await make_client(directory=DIRECTORY)
    before = await snapshot(client)
    depth = 30_000  # far past the standard module's stack
    status, answer = await send(client, b"[" * depth + b"]" * depth)
    assert (status, answer["status"]) == (400, "invalid event")
    assert answer["errors"] == ["Request body is nested deeper than 64 levels"]
    assert await snapshot(client) == before


async def test_an_integration_over_its_rate_gets_429_with_retry_after(make_client):
    client = await make_client(directory=DIRECTORY)
    statuses = []
    for number in range(4):
        response = await client.post(
            "/v2/enqueue", json=trigger(routing_key=SLOW_TOKEN, dedup_key=f"k{number}")
        )
        statuses.append(response.status)
    assert statuses == [202, 202, 202, 429]
    assert int(response.headers["Retry-After"]) >= 1
    assert (await send(client, trigger()))[0] == 202  # other integrations are unaffected


async def test_alertmanager_pagerduty_configs_is_a_real_client(make_client, tmp_path):
    client = await make_client(directory=DIRECTORY, clock=system_clock)
    manager = Alertmanager(
        tmp_path,
        receivers=[
            {
                "name": "pd",
                "pagerduty_configs": [
                    {
                        "routing_key": EV_TOKEN,
                        "url": str(client.make_url("/v2/enqueue")),
                        "send_resolved": True,
                    }
                ],
            }
        ],
        route={
            "receiver": "pd",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
    )
    manager.start()
    try:
        manager.add("alertname=DiskFull", "instance=db1", "severity=critical")
        [incident] = await eventually(lambda: _incidents(client, "triggered"), what="trigger")
        assert incident["integration"] == "pd" and "DiskFull" in incident["title"]
        end = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        manager.add("alertname=DiskFull", "instance=db1", "severity=critical", end=end)
        [incident] = await eventually(lambda: _incidents(client, "resolved"), what="resolve")
        assert incident["resolved_by"] == "pd"
    finally:
        manager.stop()


async def _incidents(client: Any, status: str) -> Any:
    found = await incidents(client)
    return found if found and all(i["status"] == status for i in found) else None
