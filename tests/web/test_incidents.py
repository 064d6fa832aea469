"""The REST API: listing, pagination, details, acknowledge and resolve."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.support.factories import ALICE_TOKEN, AM_AUTH, BOB_TOKEN, make_alert, make_webhook

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}


async def open_incidents(client: Any, count: int) -> list[int]:
    ids = []
    for i in range(count):
        body = make_webhook([make_alert("db1", alertname=f"Alert{i}")], alertname=f"Alert{i}")
        response = await client.post(URL, json=body, headers=AM_AUTH)
        ids += (await response.json())["incidents"]
    return ids


async def test_incidents_are_listed_newest_first_with_cursor_pagination(client):
    ids = await open_incidents(client, 5)
    seen = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(f"/api/v1/incidents{query}", headers=ALICE)).json()
        seen += [i["id"] for i in body["incidents"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert pages == 3


async def test_the_status_filter_selects_incidents(client):
    first, second, third = await open_incidents(client, 3)
    await client.post(f"/api/v1/incidents/{first}/acknowledge", headers=ALICE)
    await client.post(f"/api/v1/incidents/{second}/resolve", headers=ALICE)
    response = await client.get("/api/v1/incidents?status=triggered,acknowledged", headers=ALICE)
    body = await response.json()
    assert [i["id"] for i in body["incidents"]] == [third, first]
    resolved = await (await client.get("/api/v1/incidents?status=resolved", headers=ALICE)).json()
    assert [i["id"] for i in resolved["incidents"]] == [second]


async def test_acknowledging_records_who_and_when_and_is_idempotent(client, clock):
    [incident_id] = await open_incidents(client, 1)
    clock.advance(timedelta(minutes=3))
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=BOB)
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by"] == "bob"
    assert body["acknowledged_at"] == "2026-01-05T12:03:00Z"
    clock.advance(timedelta(minutes=1))
    again = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE)
    assert again.status == 200
    assert (await again.json())["acknowledged_by"] == "bob"
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    acks = [e for e in details["timeline"] if e["type"] == "incident.acknowledged"]
    assert acks == [
        {
            "at": "2026-01-05T12:03:00Z",
            "type": "incident.acknowledged",
            "actor": "bob",
            "detail": {},
        }
    ]


async def test_resolving_is_recorded_once_and_is_idempotent(client):
    [incident_id] = await open_incidents(client, 1)
    for _ in range(2):
        response = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=ALICE)
        assert response.status == 200
        assert (await response.json())["resolved_by"] == "alice"
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    assert [e["type"] for e in details["timeline"]].count("incident.resolved") == 1
    assert details["timeline"][-1]["detail"] == {"reason": "manual"}
    assert details["next_step"] is None  # nothing left to escalate


async def test_an_incident_has_the_documented_fields(client):
    [incident_id] = await open_incidents(client, 1)
    body = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    for key in (
        "id",
        "status",
        "title",
        "severity",
        "labels",
        "integration",
        "dedup_key",
        "created_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
        "alert_count",
        "alerts",
        "timeline",
        "changes",  # its integration's change events of the 2 hours before it opened
    ):
        assert key in body, key
    assert set(body["alerts"][0]) == {
        "fingerprint",
        "status",
        "labels",
        "annotations",
        "starts_at",
        "ends_at",
        "generator_url",
        "custom_details",
        "links",
        "images",
    }
    assert set(body["timeline"][0]) == {"at", "type", "actor", "detail"}
