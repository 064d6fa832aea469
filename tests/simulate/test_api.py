"""`POST /api/v1/simulate` in the running service, on SQLite and PostgreSQL: any user's
token, the state read from the database (an override, an API window), fields named in
400s, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from oncall.db.models import metadata
from oncall.web.keys import RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, AM_TOKEN, make_alert, make_webhook
from tests.support.roles import ADMIN, ADMIN_TOKEN, ALICE

URL = "/api/v1/simulate"
DIRECTORY = f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - name: alice
    time_zone: Europe/Berlin
    api_token: "{ALICE_TOKEN}"
    contacts: [{{type: email, to: alice@example.com}}]
  - {{name: bob, contacts: [{{type: email, to: bob@example.com}}]}}
  - {{name: dana, role: admin, api_token: "{ADMIN_TOKEN}", contacts: []}}
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {{members: [alice, bob], rotation: 1d, handoff: "2026-01-01 09:00"}}
policies:
  - name: main
    levels:
      - {{notify: ["schedule:primary"], escalate_after: 10m}}
      - {{notify: ["user:bob"], escalate_after: 10m}}
  - name: quiet
    levels: [{{notify: ["user:dana"], escalate_after: 10m}}]
routes:
  - {{match: ['team="db"'], policy: main}}
  - {{match: ['alertname="Other"'], policy: quiet}}
  - {{policy: main}}
"""
AT = "2026-01-05T13:00:00+01:00"  # the fake clock's T0, in Berlin


def body(**changes: Any) -> dict[str, Any]:
    found = {
        "source": "alertmanager",
        "payload": make_webhook([make_alert("db1")]),
        "at": AT,
        "hours": 1,
    }
    found.update(changes)
    return found


async def simulate(
    client: TestClient[Any, Any], sent: Any, headers: dict[str, str] = ALICE
) -> tuple[int, Any]:
    response = await client.post(URL, json=sent, headers=headers)
    return response.status, await response.json()


async def test_it_answers_who_would_be_paged_for_any_users_token(
    make_client: Any,
) -> None:
    client = await make_client(DIRECTORY)
    status, answer = await simulate(client, body())
    assert status == 200, answer
    assert answer["route"] == {
        "index": 2,
        "matchers": [],
        "skipped": [
            {"index": 0, "failed": 'team="db"'},
            {"index": 1, "failed": 'alertname="Other"'},
        ],
    }
    assert (answer["policy"], answer["urgency"], answer["maintenance"]) == ("main", "high", None)
    assert [(s["at"], s["level"], s["targets"]) for s in answer["steps"]] == [
        (
            "2026-01-05T12:00:00Z",
            1,
            [{"target": "schedule:primary", "resolved_to": "alice", "via": "layer:0"}],
        ),
        ("2026-01-05T12:10:00Z", 2, [{"target": "user:bob", "resolved_to": "bob", "via": "user"}]),
    ]
    assert answer["pages"][0] == {
        "at": "2026-01-05T12:00:00Z",
        "user": "alice",
        "contact": "email",
        "channel": "email",
        "level": 1,
        "repeat": 0,
    }
    assert (await simulate(client, body(), ADMIN))[0] == 200


async def test_an_integration_token_or_none_is_refused(make_client: Any) -> None:
    client = await make_client(DIRECTORY)
    assert (await simulate(client, body(), AM_AUTH))[0] == 401
    assert (await simulate(client, body(), {}))[0] == 401


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"at": "2026-01-05T12:00:00"}, "at"),  # no offset
        ({"at": "tomorrow"}, "at"),
        ({"hours": 0}, "hours"),
        ({"hours": 169}, "hours"),
        ({"hours": "2"}, "hours"),
        ({"acknowledge_after": "10 minutes"}, "acknowledge_after"),
        ({"acknowledge_after": "0"}, "acknowledge_after"),
        ({"source": "nagios"}, "source"),
        ({"payload": [1, 2]}, "payload"),
        ({"payload": {"version": "4", "status": "firing", "alerts": []}}, "payload.groupKey"),
        ({"integration": "nope"}, "integration"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    make_client: Any, changes: dict[str, Any], field: str
) -> None:
    client = await make_client(DIRECTORY)
    status, answer = await simulate(client, body(**changes))
    assert (status, answer.get("field")) == (400, field), answer


async def test_a_body_that_is_not_an_object_is_refused(make_client: Any) -> None:
    client = await make_client(DIRECTORY)
    status, answer = await simulate(client, ["source"])
    assert (status, answer["field"]) == (400, "$")


def every_row(conn: Connection) -> dict[str, list[str]]:
    """Return every row of every table but `meta` and `leadership` (the service's own
    bookkeeping), as text in a stable order."""
    return {
        table.name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
        for table in metadata.sorted_tables
        if table.name not in ("meta", "leadership")
    }


async def test_it_reads_overrides_and_windows_from_the_database_and_writes_nothing(
    make_client: Any,
) -> None:
    client = await make_client(DIRECTORY)
    override = {"user": "bob", "start": "2026-01-05T12:05:00Z", "end": "2026-01-05T14:00:00Z"}
    response = await client.post(
        "/api/v1/schedules/primary/overrides", json=override, headers=ADMIN
    )
    assert response.status == 201
    # An incident that pages dana, who has no contact: nothing is sent meanwhile.
    response = await client.post(
        "/api/v1/integrations/alertmanager",
        json=make_webhook([make_alert("web1")], alertname="Other"),
        headers=AM_AUTH,
    )
    assert response.status == 200
    before = await client.app[RUNTIME].db.run(every_row)

    status, answer = await simulate(client, body(at="2026-01-05T12:05:00Z"))
    assert status == 200, answer
    assert answer["steps"][0]["targets"] == [
        {"target": "schedule:primary", "resolved_to": "bob", "via": "override"}
    ]
    assert await client.app[RUNTIME].db.run(every_row) == before
    window = {"name": "db work", "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T12:30:00Z"}
    response = await client.post("/api/v1/maintenance", json=window, headers=ADMIN)
    assert response.status == 201
    before = await client.app[RUNTIME].db.run(every_row)
    status, answer = await simulate(client, body(at="2026-01-05T12:05:00Z"))
    assert answer["maintenance"] == {"window": "db work", "until": "2026-01-05T12:30:00Z"}
    assert answer["steps"][0]["at"] == "2026-01-05T12:30:00Z"
    assert await client.app[RUNTIME].db.run(every_row) == before
