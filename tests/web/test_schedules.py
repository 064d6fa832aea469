"""Schedules over HTTP: overrides, who is on call, shifts, the .ics feed; paging by schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from oncall.clock import isoformat, system_clock
from oncall.web.keys import RUNTIME
from tests.support.db import snapshot
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    T0,
    fast_directory,
    make_alert,
    make_webhook,
)
from tests.support.waiting import eventually

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
SCHEDULE = """schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {members: [alice, bob, carol], rotation: 1h, handoff: "2026-01-01 00:00"}
      - members: [carol]
        rotation: 1d
        handoff: "2026-01-01 18:00"
        restrict: {days: [mon, tue, wed, thu, fri], from: "18:00", to: "20:00"}
policies:"""


def directory_text() -> str:
    # alice is an admin: these tests have her manage bob's overrides (tests/web/test_roles.py
    # has what a responder may do).
    return (
        fast_directory(levels=("1h", "1h"))
        .replace("policies:", SCHEDULE)
        .replace("  - {name: alice, ", "  - {name: alice, role: admin, ")
        .replace('notify: ["user:alice"]', 'notify: ["schedule:primary"]')
    )


async def api(client: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await client.request(method, path, headers=ALICE, **kwargs)
    body = await response.json() if response.status != 204 else None
    return response.status, body


async def test_overrides_are_created_listed_and_deleted(make_client):
    client = await make_client(directory=directory_text())
    start = isoformat(T0)
    end = isoformat(T0 + timedelta(hours=2))
    status, created = await api(
        client,
        "POST",
        "/api/v1/schedules/primary/overrides",
        json={"user": "bob", "start": start, "end": end},
    )
    assert status == 201
    assert (created["user"], created["start"], created["end"]) == ("bob", start, end)
    assert created["created_by"] == "alice"
    status, listed = await api(client, "GET", "/api/v1/schedules/primary/overrides")
    assert [o["id"] for o in listed["overrides"]] == [created["id"]]
    status, _ = await api(client, "DELETE", f"/api/v1/schedules/primary/overrides/{created['id']}")
    assert status == 204
    status, body = await api(
        client, "DELETE", f"/api/v1/schedules/primary/overrides/{created['id']}"
    )
    assert status == 404 and body["field"] == "id"


# (case, schedule, body, status, field)
BAD = [
    (
        "unknown schedule",
        "nope",
        {"user": "bob", "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T13:00:00Z"},
        404,
        "name",
    ),
    (
        "unknown user",
        "primary",
        {"user": "zed", "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T13:00:00Z"},
        400,
        "user",
    ),
    (
        "start without offset",
        "primary",
        {"user": "bob", "start": "2026-01-05T12:00:00", "end": "2026-01-05T13:00:00Z"},
        400,
        "start",
    ),
    (
        "end not a time",
        "primary",
        {"user": "bob", "start": "2026-01-05T12:00:00Z", "end": "tomorrow"},
        400,
        "end",
    ),
    (
        "end before start",
        "primary",
        {"user": "bob", "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T11:00:00Z"},
        400,
        "end",
    ),
    ("not an object", "primary", ["bob"], 400, "$"),
]


@pytest.mark.parametrize(
    ("case", "schedule", "body", "status", "field"), BAD, ids=[b[0] for b in BAD]
)
async def test_a_bad_override_is_rejected_and_writes_nothing(
    make_client, case, schedule, body, status, field
):
    client = await make_client(directory=directory_text())
    before = await snapshot(client)
    got, error = await api(client, "POST", f"/api/v1/schedules/{schedule}/overrides", json=body)
    assert (got, error["field"]) == (status, field)
    assert await snapshot(client) == before


async def test_oncall_names_the_person_for_each_schedule_and_level(make_client):
    client = await make_client(directory=directory_text())
    # 2026-01-05 is a Monday; 17:30 UTC is 18:30 in Berlin: the evening layer has carol.
    status, body = await api(
        client, "GET", "/api/v1/oncall", params={"at": "2026-01-05T17:30:00+00:00"}
    )
    assert status == 200 and body["schedules"] == {"primary": "carol"}
    assert body["policies"]["fast"][0] == {
        "level": 1,
        "targets": ["schedule:primary"],
        "on_call": ["carol"],
    }
    await api(
        client,
        "POST",
        "/api/v1/schedules/primary/overrides",
        json={"user": "bob", "start": "2026-01-05T17:00:00Z", "end": "2026-01-05T18:00:00Z"},
    )
    status, body = await api(client, "GET", "/api/v1/oncall", params={"at": "2026-01-05T17:30:00Z"})
    assert body["schedules"] == {"primary": "bob"}


async def test_the_ics_feed_lists_the_same_shifts_as_the_api(make_client, clock):
    client = await make_client(directory=directory_text())
    await api(
        client,
        "POST",
        "/api/v1/schedules/primary/overrides",
        json={
            "user": "bob",
            "start": isoformat(T0 + timedelta(minutes=10)),
            "end": isoformat(T0 + timedelta(hours=30)),
        },
    )
    response = await client.get("/api/v1/schedules/primary.ics", headers=ALICE)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(await response.read())
    events = [
        (
            e.decoded("dtstart").astimezone(UTC),
            e.decoded("dtend").astimezone(UTC),
            str(e["summary"]),
        )
        for e in calendar.walk("VEVENT")
    ]
    status, body = await api(
        client,
        "GET",
        "/api/v1/schedules/primary/shifts",
        params={
            "start": isoformat(T0 - timedelta(days=7)),
            "end": isoformat(T0 + timedelta(days=60)),
        },
    )
    assert status == 200
    expected = [
        (
            datetime.fromisoformat(s["start"]),
            datetime.fromisoformat(s["end"]),
            f"On call: {s['user']} (primary)",
        )
        for s in body["shifts"]
    ]
    assert events == expected and len(events) > 100
    assert (await client.get("/api/v1/schedules/primary.ics")).status == 401


async def test_a_schedule_target_pages_the_person_oncall_names(make_client):
    client = await make_client(directory=directory_text(), clock=system_clock)

    async def page_once(name: str) -> tuple[list[str], Any]:
        body = make_webhook([make_alert("db1", alertname=name)], alertname=name)
        response = await client.post(
            "/api/v1/integrations/alertmanager", json=body, headers=AM_AUTH
        )
        [incident_id] = (await response.json())["incidents"]
        fired = await eventually(lambda: _fired(client, incident_id), what="level 1")
        # Who the API names at the moment the level fired.
        status, named = await api(
            client, "GET", "/api/v1/oncall", params={"at": isoformat(fired.at)}
        )
        assert status == 200
        return fired.detail["paged"], named["schedules"]["primary"]

    paged, named = await page_once("First")
    assert paged == [named]
    now = system_clock()
    await api(
        client,
        "POST",
        "/api/v1/schedules/primary/overrides",
        json={
            "user": "bob" if named != "bob" else "alice",
            "start": isoformat(now - timedelta(minutes=1)),
            "end": isoformat(now + timedelta(hours=1)),
        },
    )
    paged, named = await page_once("Second")
    assert paged == [named] and named in ("alice", "bob")


async def _fired(client: Any, incident_id: int) -> Any:
    _, _, events = await client.app[RUNTIME].incidents.details(incident_id)
    return next((e for e in events if e.type == "escalation.level"), None)
