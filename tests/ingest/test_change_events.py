"""Change events (`POST /v2/change/enqueue`): answered as PagerDuty answers them, stored per
integration, bounded, and shown with the incidents their integration opens within 2 hours
("what changed")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from oncall.db.models import change_events
from oncall.ingest import store
from oncall.ingest.events_v2 import ChangeEvent
from oncall.web.keys import RUNTIME
from tests.ingest.test_events_v2 import ALICE, DIRECTORY, EV_TOKEN, SLOW_TOKEN, send, trigger
from tests.support.db import snapshot
from tests.support.factories import T0

OTHER_TOKEN = "ev-other-0123456789abcdefghijklmnopqrstu"
TWO = DIRECTORY.replace(
    "integrations:\n",
    f'integrations:\n  - {{name: other, type: events_v2, token: "{OTHER_TOKEN}"}}\n',
)
CHANGE_PATH = "/v2/change/enqueue"


def change(summary: str = "Deployed api v2.3.1", **changes: Any) -> dict[str, Any]:
    body = {
        "routing_key": EV_TOKEN,
        "payload": {
            "summary": summary,
            "timestamp": "2026-11-28T01:10:00.000+0000",  # PagerDuty's own example form
            "source": "ci",
            "custom_details": {"build": 812, "state": "passed"},
        },
        "links": [{"href": "https://ci.example.com/builds/812", "text": "Build 812"}],
    }
    body.update(changes)
    return body


async def incident_changes(client: Any) -> list[dict[str, Any]]:
    listed = await (await client.get("/api/v1/incidents", headers=ALICE)).json()
    incident_id = listed["incidents"][0]["id"]
    body = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    changes: list[dict[str, Any]] = body["changes"]
    return changes


async def test_a_change_event_gets_pagerdutys_202_and_opens_nothing(make_client):
    client = await make_client(directory=DIRECTORY)
    status, body = await send(client, change(), CHANGE_PATH)
    assert (status, body) == (202, {"status": "success", "message": "Change event processed"})
    listed = await (await client.get("/api/v1/incidents", headers=ALICE)).json()
    assert listed["incidents"] == []


async def test_an_incident_shows_its_integrations_changes_of_the_2_hours_before(make_client, clock):
    client = await make_client(directory=TWO)
    await send(client, change("Too early: 2h01m before"), CHANGE_PATH)
    clock.advance(timedelta(minutes=1))
    await send(client, change("Migrated the schema"), CHANGE_PATH)
    await send(client, change("Another service's deploy", routing_key=OTHER_TOKEN), CHANGE_PATH)
    clock.advance(timedelta(hours=1, minutes=30))
    await send(client, change("Deployed api v2.3.1"), CHANGE_PATH)
    clock.advance(timedelta(minutes=30))
    opened_at = clock()
    assert (await send(client, trigger()))[0] == 202
    clock.advance(timedelta(minutes=5))
    await send(client, change("After it opened"), CHANGE_PATH)

    changes = await incident_changes(client)
    assert [c["summary"] for c in changes] == ["Deployed api v2.3.1", "Migrated the schema"]
    newest = changes[0]
    assert newest == {
        "summary": "Deployed api v2.3.1",
        "source": "ci",
        "timestamp": "2026-11-28T01:10:00Z",
        "received_at": (opened_at - timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
        "custom_details": {"build": 812, "state": "passed"},
        "links": [{"href": "https://ci.example.com/builds/812", "text": "Build 812"}],
        "images": [],
    }


async def test_a_change_event_needs_only_a_summary(make_client):
    client = await make_client(directory=DIRECTORY)
    status, _ = await send(
        client, {"routing_key": EV_TOKEN, "payload": {"summary": "x"}}, CHANGE_PATH
    )
    assert status == 202
    await send(client, trigger())
    [only] = await incident_changes(client)
    assert (only["source"], only["timestamp"], only["custom_details"]) == ("", None, None)


# (case, body, expected fragment of an error)
BAD = [
    ("not JSON", b"{", "not valid JSON"),
    ("no routing key", change(routing_key=None), "'routing_key' is missing"),
    ("wrong routing key", change(routing_key="nope-nope-nope"), "Invalid routing key"),
    ("no payload", change(payload=None), "'payload' is missing"),
    ("no summary", change(payload={"source": "ci"}), "'payload.summary' is missing"),
    ("summary too long", change(payload={"summary": "x" * 1025}), "longer than 1024"),
    ("bad timestamp", change(payload={"summary": "x", "timestamp": "now"}), "payload.timestamp"),
    ("link without href", change(links=[{"text": "t"}]), "'links[0].href' is missing"),
]


@pytest.mark.parametrize(("case", "body", "fragment"), BAD, ids=[b[0] for b in BAD])
async def test_a_bad_change_event_gets_400_with_its_errors_and_writes_nothing(
    make_client, case, body, fragment
):
    client = await make_client(directory=DIRECTORY)
    before = await snapshot(client)
    status, answer = await send(client, body, CHANGE_PATH)
    assert status == 400 and answer["status"] == "invalid event"
    assert any(fragment in error for error in answer["errors"]), answer
    assert await snapshot(client) == before
    assert await client.app[RUNTIME].db.run(_count) == 0


async def test_change_events_over_the_rate_get_429_and_leave_triggers_alone(make_client):
    client = await make_client(directory=DIRECTORY)
    statuses = [
        (await send(client, change(routing_key=SLOW_TOKEN), CHANGE_PATH))[0] for _ in range(4)
    ]
    assert statuses == [202, 202, 202, 429]
    assert (await send(client, trigger(routing_key=SLOW_TOKEN)))[0] == 202


def _count(conn: Any, integration: str | None = None) -> int:
    query = select(func.count()).select_from(change_events)
    if integration is not None:
        query = query.where(change_events.c.integration == integration)
    return int(conn.execute(query).scalar_one())


def _received(conn: Any) -> list[Any]:
    query = select(change_events.c.received_at).where(change_events.c.integration == "pd")
    return [r for (r,) in conn.execute(query.order_by(change_events.c.id))]


async def test_change_events_are_kept_a_week_and_at_most_a_number_per_integration(
    make_client, monkeypatch
):
    db = (await make_client(directory=TWO)).app[RUNTIME].db
    monkeypatch.setattr(store, "CHANGES_KEPT", 3)
    event = ChangeEvent(EV_TOKEN, "Deployed")

    async def add(integration: str, at: Any) -> None:
        await db.run(store.add_change, integration, event, at)

    await add("pd", T0)
    await add("other", T0)
    await add("pd", T0 + timedelta(days=7))
    assert (await db.run(_count, "pd"), await db.run(_count, "other")) == (2, 1)  # a week old
    await add("pd", T0 + timedelta(days=7, seconds=1))
    assert await db.run(_count, "pd") == 2  # the first, now older than a week, is gone
    for minute in range(5):
        await add("pd", T0 + timedelta(days=8, minutes=minute))
    assert await db.run(_received) == [T0 + timedelta(days=8, minutes=m) for m in (2, 3, 4)]
    assert await db.run(_count, "other") == 1  # another integration's are its own
