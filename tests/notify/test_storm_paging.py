"""The storm guard: past `[paging] storm_threshold`, a person's pages fold into one digest a
minute (a recorded, retried page of its own) while every incident is still recorded and
escalates; once the rate has stayed below the threshold for the window, pages are per
incident again."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from oncall.db.models import incident_events, incidents, notifications
from oncall.web.keys import RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, AM_TOKEN, make_alert, make_webhook
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
MINUTE = timedelta(minutes=1)
DEFAULT_COUNT = 50  # `[paging] storm_threshold` is 50/5m unless set


def directory(url: str) -> str:
    """Alice and carol are level 1, each with one webhook to `url`; bob is level 2."""
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{{type: webhook, url: "{url}"}}]}}
  - {{name: carol, contacts: [{{type: webhook, url: "{url}"}}]}}
  - {{name: bob, contacts: [{{type: email, to: b@example.com}}]}}
policies:
  - name: p
    levels:
      - {{notify: ["user:alice", "user:carol"], escalate_after: 1h}}
      - {{notify: ["user:bob"], escalate_after: 1h}}
routes: [{{policy: p}}]
"""


async def open_group(client: Any, name: str) -> int:
    """Open one incident through the real app: a new Alertmanager group `name`."""
    body = make_webhook([make_alert("db1", alertname=name)], alertname=name)
    response = await client.post(URL, json=body, headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return int(incident_id)


def received(receiver: Any) -> Counter[tuple[str, str]]:
    """Return how many requests the receiver got, by (user, event)."""
    bodies = [json.loads(r.body) for r in receiver.requests]
    return Counter((b["user"], b["event"]) for b in bodies)


async def rows(client: Any, **where: Any) -> list[Any]:
    def read(conn: Any) -> list[Any]:
        query = select(notifications).order_by(notifications.c.id)
        for column, value in where.items():
            query = query.where(notifications.c[column] == value)
        return list(conn.execute(query).all())

    found: list[Any] = await client.app[RUNTIME].db.run(read)
    return found


async def settled(client: Any) -> bool:
    """Return whether no page is on the wire: every pending row waits for its time or for
    a retry after a recorded failure."""
    pending = await rows(client, status="pending")
    return not [r for r in pending if r.attempts > 0 and r.last_error is None]


async def test_two_hundred_new_groups_in_a_minute_page_each_person_with_digests(
    make_client: Any, receiver: Any, clock: Any
) -> None:
    client = await make_client(directory=directory(receiver.url))
    runtime = client.app[RUNTIME]
    threshold = DEFAULT_COUNT
    opened = []
    for n in range(200):
        opened.append(await open_group(client, f"Storm{n:03d}"))
        clock.advance(timedelta(milliseconds=250))
    await eventually(lambda: settled(client), what="the pages on the wire recorded")

    def recorded(conn: Any) -> tuple[int, int, int]:
        count = select(func.count()).select_from
        return (
            conn.execute(count(incidents)).scalar_one(),
            conn.execute(
                count(incident_events).where(incident_events.c.type == "escalation.level")
            ).scalar_one(),
            conn.execute(count(incidents).where(incidents.c.next_due_at.is_not(None))).scalar_one(),
        )

    # Every incident is recorded, fired its first level and waits for its second.
    assert await runtime.db.run(recorded) == (200, 200, 200)
    for user in ("alice", "carol"):
        got = received(receiver)
        # The pages up to the threshold went out one by one; then one digest at once.
        assert got[(user, "incident.triggered")] == threshold
        assert got[(user, "incidents.digest")] == 1
        folded = await rows(client, user_name=user, status="folded")
        assert len(folded) == 200 - threshold
        assert {r.kind for r in folded} == {"trigger"}
        [sent, waiting] = await rows(client, user_name=user, kind="digest")
        assert (sent.status, waiting.status) == ("sent", "pending")
        assert waiting.next_attempt_at == sent.sent_at + MINUTE  # one a minute
    first = json.loads(
        next(r.body for r in receiver.requests if b"incidents.digest" in r.body).decode()
    )
    assert first["digest"]["incidents_opened"] == threshold + 1
    assert first["digest"]["url"].endswith("/api/v1/incidents?status=triggered")

    # The folded pages are visible in the API, with why.
    response = await client.get(
        "/api/v1/notifications", params={"incident": str(opened[-1])}, headers=ALICE
    )
    listed = (await response.json())["notifications"]
    assert {(n["user"], n["kind"], n["status"]) for n in listed} >= {
        ("alice", "trigger", "folded"),
        ("carol", "trigger", "folded"),
    }

    response = await client.get(
        "/api/v1/notifications", params={"status": "folded", "limit": "500"}, headers=ALICE
    )
    assert response.status == 200
    assert len((await response.json())["notifications"]) == 2 * (200 - threshold)

    # A minute later the pending digest goes out, saying all two hundred.
    clock.advance(MINUTE)
    for user in ("alice", "carol"):
        [_, waiting] = await rows(client, user_name=user, kind="digest")
        assert await runtime.notifier.deliver(waiting.id) == "delivered"
    got = received(receiver)
    assert got[("alice", "incidents.digest")] == got[("carol", "incidents.digest")] == 2
    last = json.loads(receiver.requests[-1].body)
    assert last["digest"]["incidents_opened"] == 200
    assert last["digest"]["title"] == "200 incidents opened in the last 5 minutes"
    assert [i["id"] for i in last["digest"]["newest"]] == opened[::-1][:5]
    assert len(got) == 4  # nothing else: no resolved messages, no other pages


async def test_pages_are_per_incident_again_once_the_rate_stayed_below_for_the_window(
    make_client: Any, receiver: Any, clock: Any
) -> None:
    client = await make_client(directory=directory(receiver.url), paging_storm_threshold="3/5m")
    for n in range(5):
        await open_group(client, f"Burst{n}")
    await eventually(lambda: settled(client), what="the burst's pages recorded")
    assert received(receiver)[("alice", "incident.triggered")] == 3

    clock.advance(timedelta(minutes=4))  # below the threshold, but not for a window yet
    late = await open_group(client, "Late")
    await eventually(lambda: settled(client), what="the late page recorded")
    assert {r.status for r in await rows(client, incident_id=late, kind="trigger")} == {"folded"}

    clock.advance(timedelta(minutes=5, seconds=1))  # a whole window since the last storm
    calm = await open_group(client, "Calm")
    await eventually(lambda: settled(client), what="the calm page recorded")
    assert {r.status for r in await rows(client, incident_id=calm, kind="trigger")} == {"sent"}
    calm_pages = [
        json.loads(r.body)
        for r in receiver.requests
        if json.loads(r.body).get("incident") and json.loads(r.body)["incident"]["id"] == calm
    ]
    assert sorted(p["user"] for p in calm_pages) == ["alice", "carol"]


async def test_a_digest_is_retried_like_a_page_when_the_receiver_fails_once(
    make_client: Any, receiver: Any, clock: Any
) -> None:
    client = await make_client(directory=directory(receiver.url), paging_storm_threshold="1/5m")
    runtime = client.app[RUNTIME]
    # The test sends the retries itself: the scheduler would send them 2 s (of the wall
    # clock) after the failures, racing it on a loaded machine.
    runtime.timers.pause()
    await open_group(client, "First")
    await eventually(lambda: settled(client), what="the first pages recorded")
    receiver.statuses = [500, 500]  # each person's digest fails its first attempt
    await open_group(client, "Second")
    await eventually(lambda: settled(client), what="the failed digests recorded")
    digests = await rows(client, kind="digest")
    assert [(d.user_name, d.status, d.attempts) for d in digests] == [
        ("alice", "pending", 1),
        ("carol", "pending", 1),
    ]
    assert all(d.next_attempt_at > clock.now for d in digests)  # a retry, later
    clock.advance(MINUTE)
    for digest in digests:
        assert await runtime.notifier.deliver(digest.id) == "delivered"
    response = await client.get("/api/v1/notifications", headers=ALICE)
    listed = [n for n in (await response.json())["notifications"] if n["kind"] == "digest"]
    assert [[a["outcome"] for a in n["attempt_log"]] for n in listed] == [
        ["retry", "delivered"],
        ["retry", "delivered"],
    ]
    assert received(receiver)[("alice", "incidents.digest")] == 2  # the failure and the retry
