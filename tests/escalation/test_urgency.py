"""Urgency: a route's `high`, `low` or `by_severity`; a low-urgency incident pages level 1
with the users' low rules and never escalates further."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from oncall.escalation.steps import Step
from oncall.web.keys import RUNTIME
from tests.escalation.test_escalation import job_ids
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"


def directory(urgency: str) -> str:
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: email, to: alice@example.com}}
      - {{type: webhook, name: push, url: "http://127.0.0.1:9/push"}}
    notification_rules:
      high: [{{contact: email, after: 0m}}]
      low: [{{contact: push, after: 0m}}]
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: bob@example.com}}]}}
policies:
  - name: p
    repeat: 1
    levels:
      - {{notify: ["user:alice"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 5m}}
routes: [{{policy: p, urgency: {urgency}}}]
"""


async def open_incident(client: Any, severity: str = "critical") -> int:
    alert = make_alert("db1", severity=severity)
    body = make_webhook([alert])
    body["commonLabels"]["severity"] = severity
    response = await client.post(URL, json=body, headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return incident_id


async def incident(client: Any, incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    assert response.status == 200
    return await response.json()


async def pages(client: Any, incident_id: int) -> list[tuple[int, str, str]]:
    response = await client.get(
        "/api/v1/notifications", params={"incident": str(incident_id)}, headers=ALICE
    )
    rows = (await response.json())["notifications"]
    return sorted((n["level"], n["user"], n["contact"]) for n in rows)


async def test_a_low_urgency_incident_pages_level_1_with_low_rules_and_never_level_2(
    make_client: Any, clock: Any, key_prefix: str
) -> None:
    client = await make_client(directory=directory("low"))
    runtime = client.app[RUNTIME]
    incident_id = await open_incident(client)
    body = await incident(client, incident_id)
    assert (body["urgency"], body["status"], body["next_step"]) == ("low", "triggered", None)
    [routed] = [e for e in body["timeline"] if e["type"] == "incident.routed"]
    assert routed["detail"]["urgency"] == "low"
    assert await pages(client, incident_id) == [(1, "alice", "push")]
    assert await runtime.escalation.expected() == {}  # no step for Redis to hold
    clock.advance(timedelta(minutes=30))  # far past level 1's escalate_after
    assert await runtime.escalation.run_step(incident_id, Step(2, 0)) is False
    await runtime.reconciler.run_once()  # Redis now holds what the database expects
    assert not {j for j in job_ids(key_prefix) if j.startswith(f"incident:{incident_id}:")}
    assert await pages(client, incident_id) == [(1, "alice", "push")]
    body = await incident(client, incident_id)
    assert body["status"] == "triggered" and body["next_step"] is None
    types = [e["type"] for e in body["timeline"]]
    assert types.count("escalation.level") == 1 and "escalation.exhausted" not in types
    listed = await client.get("/api/v1/incidents", headers=ALICE)
    assert [i["id"] for i in (await listed.json())["incidents"]] == [incident_id]


async def test_a_high_urgency_incident_pages_with_high_rules_and_escalates(
    make_client: Any, clock: Any, key_prefix: str
) -> None:
    client = await make_client(directory=directory("high"))
    incident_id = await open_incident(client, severity="info")  # high whatever the severity
    body = await incident(client, incident_id)
    assert body["urgency"] == "high" and body["next_step"]["level"] == 2
    assert await pages(client, incident_id) == [(1, "alice", "email")]
    level_2 = f"incident:{incident_id}:level:2:repeat:0"
    await eventually(lambda: _value(level_2 in job_ids(key_prefix)), what="level 2's job")
    clock.advance(timedelta(minutes=5))
    assert await client.app[RUNTIME].escalation.run_step(incident_id, Step(2, 0)) is True
    assert await pages(client, incident_id) == [(1, "alice", "email"), (2, "bob", "email")]


async def _value(value: Any) -> Any:
    return value


@pytest.mark.parametrize(
    ("severity", "urgency"),
    [
        ("critical", "high"),
        ("error", "high"),
        ("warning", "low"),
        ("info", "low"),
        ("unknown", "high"),  # no severity label at all
        ("disaster", "high"),  # one nobody classified
    ],
)
async def test_by_severity_sets_the_urgency_from_the_alertmanager_severity(
    make_client: Any, severity: str, urgency: str
) -> None:
    client = await make_client(directory=directory("by_severity"))
    incident_id = await open_incident(client, severity=severity)
    assert (await incident(client, incident_id))["urgency"] == urgency


@pytest.mark.parametrize(("severity", "urgency"), [("error", "high"), ("warning", "low")])
async def test_by_severity_reads_the_events_v2_payload_severity(
    make_client: Any, severity: str, urgency: str
) -> None:
    client = await make_client(directory=directory("by_severity"))
    event = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "disk-db1",
        "payload": {"summary": "Disk full", "source": "db1", "severity": severity},
    }
    response = await client.post("/v2/enqueue", json=event)
    assert response.status == 202
    listed = await (await client.get("/api/v1/incidents", headers=ALICE)).json()
    [found] = listed["incidents"]
    assert found["urgency"] == urgency


@pytest.mark.parametrize(
    ("route", "severity", "expected"),
    [
        ("high", "info", "high"),  # a fixed urgency ignores the severity
        ("low", "critical", "low"),
        ("by_severity", "critical", "high"),
        ("by_severity", "error", "high"),
        ("by_severity", "warning", "low"),
        ("by_severity", "info", "low"),
        ("by_severity", "", "high"),  # unclassified pages as high
        ("by_severity", "page", "high"),
    ],
)
def test_incident_urgency(route: str, severity: str, expected: str) -> None:
    from oncall.routing.urgency import incident_urgency  # here: the other tests run without it

    assert incident_urgency(route, severity) == expected
