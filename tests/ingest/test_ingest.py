"""Alertmanager deliveries become deduplicated incidents (through the real HTTP endpoint)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from oncall.web.keys import RUNTIME
from tests.support.db import count_rows, snapshot
from tests.support.factories import ALICE_TOKEN, AM_AUTH, T0, load_payload, make_alert, make_webhook

URL = "/api/v1/integrations/alertmanager"
USER = {"Authorization": f"Bearer {ALICE_TOKEN}"}


async def deliver(client: TestClient[Any, Any], body: dict[str, Any]) -> list[int]:
    response = await client.post(URL, json=body, headers=AM_AUTH)
    assert response.status == 200, await response.text()
    return (await response.json())["incidents"]


async def incident(client: TestClient[Any, Any], incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=USER)
    assert response.status == 200
    return await response.json()


def timeline_types(body: dict[str, Any]) -> list[str]:
    return [entry["type"] for entry in body["timeline"]]


async def test_the_same_group_delivered_100_times_gives_one_incident(client):
    body = make_webhook([make_alert("db1"), make_alert("db2")])
    first = await deliver(client, body)
    before = await snapshot(client)
    for _ in range(99):
        assert await deliver(client, body) == first
    assert await snapshot(client) == before  # re-deliveries write nothing
    counts = await client.app[RUNTIME].db.run(count_rows)
    assert counts["incidents"] == 1 and counts["alerts"] == 2


async def test_a_captured_alertmanager_group_ingests_correctly(client):
    [incident_id] = await deliver(client, load_payload("am_firing_two"))
    body = await incident(client, incident_id)
    assert body["status"] == "triggered"
    assert body["title"] == "DiskFull"
    assert body["severity"] == "critical"
    assert body["labels"] == {"alertname": "DiskFull", "severity": "critical", "team": "db"}
    assert body["dedup_key"] == '{}:{alertname="DiskFull"}'
    assert body["integration"] == "prometheus"
    assert body["external_url"] == "http://vm:9193"
    assert body["alert_count"] == 2
    by_instance = {a["labels"]["instance"]: a for a in body["alerts"]}
    db1 = by_instance["db1:9100"]
    assert db1["fingerprint"] == "8d26f886e96d0e83"
    assert db1["starts_at"] == "2026-11-28T01:30:50.340099Z"  # nanoseconds truncated
    assert db1["ends_at"] is None  # Go's zero time means "not set"
    assert db1["annotations"]["summary"] == "Disk almost full on db1"
    assert db1["generator_url"] == "http://prometheus:9090/graph?g0.expr=disk"
    # Level 1 is paged in the transaction that opens the incident.
    assert timeline_types(body) == [
        "incident.triggered",
        "alert.added",
        "incident.routed",
        "escalation.level",
    ]
    assert body["timeline"][2]["detail"] == {
        "route": 'routes[0] {severity="critical"}',
        "policy": "default",
        "urgency": "high",
    }
    assert body["timeline"][3]["detail"]["level"] == 1
    assert body["timeline"][3]["detail"]["paged"] == ["alice"]


async def test_captured_partial_then_full_resolve_auto_resolves(client):
    [incident_id] = await deliver(client, load_payload("am_firing_two"))
    # Alertmanager re-sent db1 with its start truncated to milliseconds (see tests/data).
    assert await deliver(client, load_payload("am_partial_resolve")) == [incident_id]
    body = await incident(client, incident_id)
    assert body["status"] == "triggered" and body["next_step"] is not None
    assert body["alert_count"] == 2 and body["firing_count"] == 1
    statuses = {a["labels"]["instance"]: a["status"] for a in body["alerts"]}
    assert statuses == {"db1:9100": "resolved", "db2:9100": "firing"}

    await deliver(client, load_payload("am_all_resolved"))
    body = await incident(client, incident_id)
    assert body["status"] == "resolved"
    assert body["resolved_by"] == "system"
    assert body["next_step"] is None  # nothing left to escalate
    assert body["alert_count"] == 2
    assert timeline_types(body) == [
        "incident.triggered",
        "alert.added",
        "incident.routed",
        "escalation.level",
        "alert.resolved",
        "alert.resolved",
        "incident.resolved",
    ]
    assert body["timeline"][-1]["detail"] == {"reason": "all alerts resolved"}


async def test_partial_resolves_then_the_last_one_auto_resolves(client, clock):
    alerts = [make_alert(f"db{i}") for i in range(3)]
    [incident_id] = await deliver(client, make_webhook(alerts))
    for i in range(2):
        clock.advance(timedelta(minutes=1))
        alerts[i] = make_alert(f"db{i}", status="resolved")
        await deliver(client, make_webhook(alerts))
        assert (await incident(client, incident_id))["status"] == "triggered"
    alerts[2] = make_alert("db2", status="resolved")
    await deliver(client, make_webhook(alerts))
    body = await incident(client, incident_id)
    assert body["status"] == "resolved" and body["firing_count"] == 0
    assert body["resolved_at"] == "2026-01-05T12:02:00Z"


async def pages(client: TestClient[Any, Any], incident_id: int) -> list[tuple[str, int]]:
    """Return (user, level) of every page written for the incident."""
    response = await client.get(
        "/api/v1/notifications", params={"incident": str(incident_id)}, headers=USER
    )
    assert response.status == 200
    rows = (await response.json())["notifications"]
    return sorted((row["user"], row["level"]) for row in rows if row["kind"] == "trigger")


async def test_a_still_firing_alert_after_a_manual_resolve_opens_a_new_incident(client):
    body = make_webhook([make_alert("db1")])
    [first] = await deliver(client, body)
    response = await client.post(f"/api/v1/incidents/{first}/resolve", headers=USER)
    assert response.status == 200
    # Alertmanager's next notification still shows the same occurrence (same startsAt) firing.
    [second] = await deliver(client, body)
    assert second != first
    assert (await incident(client, first))["status"] == "resolved"
    opened = await incident(client, second)
    assert opened["status"] == "triggered" and opened["firing_count"] == 1
    assert [(a["fingerprint"], a["status"]) for a in opened["alerts"]] == [
        ("fp-DiskFull-db1", "firing")
    ]
    assert timeline_types(opened) == [
        "incident.triggered",
        "alert.added",
        "incident.refired",
        "incident.routed",
        "escalation.level",
    ]
    refired = opened["timeline"][2]["detail"]
    assert refired["previous_incident"] == first and refired["previous_incidents"] == [first]
    assert refired["reason"] == f"the alert still fires after incident #{first} was resolved"
    assert opened["timeline"][4]["detail"]["paged"] == ["alice"]  # pages like any incident
    assert await pages(client, second) == [("alice", 1)]
    # Re-deliveries to the open re-fired incident change nothing...
    before = await snapshot(client)
    assert await deliver(client, body) == [second]
    assert await snapshot(client) == before
    # ...and the alert's resolution resolves the new incident, once.
    resolved = make_webhook([make_alert("db1", status="resolved")])
    assert await deliver(client, resolved) == [second]
    assert (await incident(client, second))["status"] == "resolved"
    before = await snapshot(client)
    assert await deliver(client, resolved) == []
    assert await snapshot(client) == before


async def test_an_alert_the_source_resolved_then_reports_firing_opens_a_new_incident(client):
    body = make_webhook([make_alert("db1")])
    [first] = await deliver(client, body)
    # E.g. Prometheus could not reach Alertmanager for longer than the alert's endsAt window.
    assert await deliver(client, make_webhook([make_alert("db1", status="resolved")])) == [first]
    assert (await incident(client, first))["status"] == "resolved"
    [second] = await deliver(client, body)  # the same startsAt, firing again
    assert second != first
    opened = await incident(client, second)
    assert opened["status"] == "triggered"
    [refired] = [e for e in opened["timeline"] if e["type"] == "incident.refired"]
    assert refired["detail"]["previous_incident"] == first
    assert refired["detail"]["reason"] == (
        f"the alert fires again after it resolved in incident #{first}"
    )
    assert await pages(client, second) == [("alice", 1)]
    before = await snapshot(client)
    assert await deliver(client, body) == [second]
    assert await snapshot(client) == before
    counts = await client.app[RUNTIME].db.run(count_rows)
    assert counts["incidents"] == 2 and counts["alerts"] == 2


async def test_a_resolved_alert_of_an_open_incident_stays_resolved(client):
    [incident_id] = await deliver(client, make_webhook([make_alert("db1"), make_alert("db2")]))
    partial = make_webhook([make_alert("db1", status="resolved"), make_alert("db2")])
    assert await deliver(client, partial) == [incident_id]
    before = await snapshot(client)
    # The resolved one again, and a late firing copy of it: the incident is open, no re-fire.
    assert await deliver(client, partial) == [incident_id]
    assert await deliver(client, make_webhook([make_alert("db1"), make_alert("db2")])) == [
        incident_id
    ]
    assert await snapshot(client) == before


async def test_a_new_occurrence_after_resolution_opens_a_new_incident(client):
    [first] = await deliver(client, make_webhook([make_alert("db1")]))
    await deliver(client, make_webhook([make_alert("db1", status="resolved")]))
    refired = make_alert("db1", starts_at=T0 + timedelta(hours=1))
    [second] = await deliver(client, make_webhook([refired]))
    assert second != first
    assert (await incident(client, first))["status"] == "resolved"
    assert (await incident(client, second))["status"] == "triggered"


async def test_new_alerts_joining_an_acknowledged_incident_keep_it_acknowledged(client):
    [incident_id] = await deliver(client, make_webhook([make_alert("db1")]))
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=USER)
    assert response.status == 200
    assert await deliver(client, make_webhook([make_alert("db1"), make_alert("db2")])) == [
        incident_id
    ]
    body = await incident(client, incident_id)
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "alice"
    assert body["alert_count"] == 2


async def test_a_resolved_alert_never_seen_firing_opens_nothing(client):
    before = await snapshot(client)
    assert await deliver(client, make_webhook([make_alert("db9", status="resolved")])) == []
    assert await snapshot(client) == before


async def test_truncated_alerts_are_recorded_on_the_incident(client):
    [incident_id] = await deliver(client, make_webhook([make_alert("db1")], truncated=40))
    assert (await incident(client, incident_id))["truncated_alerts"] == 40
    await deliver(client, make_webhook([make_alert("db1")], truncated=7))
    assert (await incident(client, incident_id))["truncated_alerts"] == 7


async def test_another_group_resolving_a_shared_alert_keeps_the_incidents_truncation(client):
    # One alert (same fingerprint) routed to two groups: the second group's delivery resolves
    # it in the first group's incident, and must not touch that incident's own fields.
    shared = make_alert("db1", fingerprint="fp-shared")
    [first] = await deliver(client, make_webhook([shared, make_alert("db2")], truncated=40))
    resolved = make_alert("db1", fingerprint="fp-shared", status="resolved")
    await deliver(client, make_webhook([resolved], alertname="Other"))
    body = await incident(client, first)
    assert {a["fingerprint"]: a["status"] for a in body["alerts"]}["fp-shared"] == "resolved"
    assert body["truncated_alerts"] == 40


async def test_two_groups_give_two_incidents(client):
    [disk] = await deliver(client, make_webhook([make_alert("db1")]))
    [cpu] = await deliver(
        client, make_webhook([make_alert("db1", alertname="CpuHigh")], alertname="CpuHigh")
    )
    assert disk != cpu


async def test_basic_auth_with_the_token_as_password_is_accepted(client):
    import base64

    credentials = base64.b64encode(
        b"alertmanager:am-token-0123456789abcdefghijklmnopqrstuv"
    ).decode()
    response = await client.post(
        URL,
        json=make_webhook([make_alert("db1")]),
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert response.status == 200


async def test_a_storm_of_2000_alerts_in_one_group_is_one_incident(client):
    alerts = [make_alert(f"host{i}") for i in range(2000)]
    [incident_id] = await deliver(client, make_webhook(alerts))
    assert await deliver(client, make_webhook(alerts)) == [incident_id]
    body = await incident(client, incident_id)
    assert body["alert_count"] == 2000
    added = [e for e in body["timeline"] if e["type"] == "alert.added"]
    assert len(added) == 1 and added[0]["detail"]["count"] == 2000
