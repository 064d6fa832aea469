"""Personal notification rules: each rule is a page due `after` the level fired, a pending
outbox row woken like a retry, cancelled by an acknowledgement, kept across a crash."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from sqlalchemy import select

from oncall.clock import system_clock
from oncall.db.engine import Database, make_engine
from oncall.db.models import incidents, notifications
from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError
from oncall.settings import load_settings
from oncall.web.keys import RUNTIME
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.process import ServiceProcess
from tests.support.receivers import HttpReceiver
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def directory(url_a: str, url_b: str, rules: str, urgency: str = "high") -> str:
    """Alice has two webhooks, `webhook-a` and `webhook-b`, and `rules`; bob is level 2."""
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: webhook, name: webhook-a, url: "{url_a}"}}
      - {{type: webhook, name: webhook-b, url: "{url_b}"}}
    notification_rules: {rules}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: b@example.com}}]}}
policies:
  - name: p
    levels:
      - {{notify: ["user:alice"], escalate_after: 1h}}
      - {{notify: ["user:bob"], escalate_after: 1h}}
routes: [{{policy: p, urgency: {urgency}}}]
"""


A_THEN_B = "{high: [{contact: webhook-a, after: 0m}, {contact: webhook-b, after: 3s}]}"


@pytest.fixture
async def receivers(aiohttp_server: Any) -> tuple[HttpReceiver, HttpReceiver]:
    found = []
    for _ in range(2):
        receiver = HttpReceiver()
        server = await aiohttp_server(receiver.app())
        receiver.url = str(server.make_url("/hook"))
        found.append(receiver)
    return found[0], found[1]


async def open_incident(client: Any) -> int:
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return incident_id


async def pages(client: Any, incident_id: int) -> dict[str, dict[str, Any]]:
    """Return the incident's notifications through the API, by contact name."""
    response = await client.get(
        "/api/v1/notifications", params={"incident": str(incident_id)}, headers=ALICE
    )
    assert response.status == 200
    return {n["contact"]: n for n in (await response.json())["notifications"]}


def notification_job_run_time(key_prefix: str, notification_id: int) -> float | None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        score = client.zscore(
            f"{key_prefix}:notification:run_times", f"notification:{notification_id}"
        )
        return None if score is None else float(score)
    finally:
        client.close()


async def test_the_first_rule_pages_at_once_and_the_second_after_its_delay(
    make_client: Any, receivers: Any
) -> None:
    a, b = receivers
    client = await make_client(directory=directory(a.url, b.url, A_THEN_B), clock=system_clock)
    incident_id = await open_incident(client)
    found = await pages(client, incident_id)
    assert set(found) == {"webhook-a", "webhook-b"}  # bob (level 2) is not paged yet
    later = found["webhook-b"]
    assert (later["status"], later["attempts"]) == ("pending", 0)
    fired_at = datetime.fromisoformat(later["created_at"])
    due = datetime.fromisoformat(later["next_attempt_at"])
    assert due - fired_at == timedelta(seconds=3)
    await eventually(lambda: _value(a.requests), what="webhook-a paged at once")
    assert not b.requests
    await eventually(lambda: _value(b.requests), what="webhook-b paged after 3s")
    body = json.loads(b.requests[0].body)
    assert body["incident"]["id"] == incident_id
    assert datetime.fromisoformat(body["sent_at"]) >= due  # woken at its due time, not before
    sent = await eventually(lambda: _sent(client, incident_id, "webhook-b"), what="b recorded")
    assert sent["attempts"] == 1 and len(a.requests) == len(b.requests) == 1


async def _value(value: Any) -> Any:
    return value


async def _sent(client: Any, incident_id: int, contact: str) -> Any:
    page = (await pages(client, incident_id)).get(contact)
    return page if page and page["status"] == "sent" else None


async def test_a_later_page_is_a_notification_job_due_at_its_time(
    make_client: Any, receivers: Any, clock: Any, key_prefix: str
) -> None:
    """The database row is the truth and Redis wakes it: the page's delivery job runs when
    the page is due, and the reconciler rebuilds that job from the row."""
    a, b = receivers
    client = await make_client(directory=directory(a.url, b.url, A_THEN_B))
    runtime = client.app[RUNTIME]
    incident_id = await open_incident(client)
    later = (await pages(client, incident_id))["webhook-b"]
    due = datetime.fromisoformat(later["next_attempt_at"])
    expected = runtime.timers.wall_timestamp(due)

    async def armed() -> bool:
        run_time = notification_job_run_time(key_prefix, later["id"])
        return run_time is not None and abs(run_time - expected) < 1.0

    await eventually(armed, what="the later page's job in Redis")
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT).delete(
        f"{key_prefix}:notification:jobs", f"{key_prefix}:notification:run_times"
    )
    assert notification_job_run_time(key_prefix, later["id"]) is None
    await runtime.reconciler.run_once()
    await eventually(armed, what="the job rebuilt by the reconciler")


async def test_an_acknowledgement_cancels_the_rules_not_yet_sent(
    make_client: Any, receivers: Any, clock: Any
) -> None:
    a, b = receivers
    client = await make_client(directory=directory(a.url, b.url, A_THEN_B))
    runtime = client.app[RUNTIME]
    incident_id = await open_incident(client)
    await eventually(lambda: _value(a.requests), what="webhook-a paged at once")
    clock.advance(timedelta(seconds=1))
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE)
    assert response.status == 200
    later = (await pages(client, incident_id))["webhook-b"]
    assert (later["status"], later["attempts"], later["next_attempt_at"]) == ("cancelled", 0, None)
    clock.advance(timedelta(seconds=5))
    assert await runtime.notifier.deliver(later["id"]) == "stale"  # its job, had it stayed
    assert not b.requests
    assert (await pages(client, incident_id))["webhook-b"]["status"] == "cancelled"


async def test_a_later_page_of_an_incident_acknowledged_meanwhile_is_cancelled_when_woken(
    make_client: Any, receivers: Any, clock: Any
) -> None:
    """Should the cancelling miss the row (it is written after the acknowledgement read the
    pages, say), the page itself checks its incident when woken and is cancelled."""
    a, b = receivers
    client = await make_client(directory=directory(a.url, b.url, A_THEN_B))
    runtime = client.app[RUNTIME]
    incident_id = await open_incident(client)
    later = (await pages(client, incident_id))["webhook-b"]

    def acknowledge_only(conn: Any) -> None:
        conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id)
            .values(status="acknowledged", next_due_at=None)
        )

    await runtime.db.run(acknowledge_only)
    clock.advance(timedelta(seconds=3))
    assert await runtime.notifier.deliver(later["id"]) == "stale"
    assert not b.requests
    assert (await pages(client, incident_id))["webhook-b"]["status"] == "cancelled"


async def test_a_resolution_sends_resolved_messages_only_to_contacts_already_paged(
    make_client: Any, receivers: Any, clock: Any
) -> None:
    a, b = receivers
    client = await make_client(directory=directory(a.url, b.url, A_THEN_B))
    incident_id = await open_incident(client)
    await eventually(lambda: _sent(client, incident_id, "webhook-a"), what="webhook-a sent")
    response = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=ALICE)
    assert response.status == 200

    async def resolved_sent() -> Any:
        return [r for r in a.requests if json.loads(r.body)["event"] == "incident.resolved"]

    await eventually(resolved_sent, what="the resolved message to webhook-a")
    expected = [
        ("resolved", "webhook-a", "sent"),
        ("trigger", "webhook-a", "sent"),
        ("trigger", "webhook-b", "cancelled"),
    ]

    async def recorded() -> bool:
        # The receiver has the message before the sender records its attempt.
        response = await client.get(
            "/api/v1/notifications", params={"incident": str(incident_id)}, headers=ALICE
        )
        rows = (await response.json())["notifications"]
        return sorted((n["kind"], n["contact"], n["status"]) for n in rows) == expected

    await eventually(recorded, what="the resolved message recorded as sent")
    assert not b.requests


async def test_without_rules_for_an_urgency_every_contact_is_paged_at_once(
    make_client: Any, receivers: Any
) -> None:
    a, b = receivers
    only_low = "{low: [{contact: webhook-b, after: 1h}]}"
    client = await make_client(directory=directory(a.url, b.url, only_low), clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(lambda: _value(a.requests and b.requests), what="both contacts paged")
    found = await pages(client, incident_id)
    assert {n["level"] for n in found.values()} == {1}


async def test_a_later_page_is_sent_once_across_a_sigkill_of_the_service(
    tmp_path: Path, database_env: dict[str, str], key_prefix: str, receivers: Any
) -> None:
    a, b = receivers
    directory_file = tmp_path / "rules.yaml"
    directory_file.write_text(directory(a.url, b.url, A_THEN_B))
    env = {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(directory_file),
        "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "1s",
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    database = {k: v for k, v in env.items() if k.startswith("ONCALL_DATABASE")}
    db = Database(make_engine(load_settings({"ONCALL_SETTINGS": "/dev/null", **database}).database))

    def later_page(conn: Any) -> Any:
        return conn.execute(
            select(notifications).where(notifications.c.contact_name == "webhook-b")
        ).one()

    try:
        await service.start()
        async with aiohttp.ClientSession() as session:
            body = make_webhook([make_alert("db1")])
            async with session.post(f"{service.url}{URL}", json=body, headers=AM_AUTH) as answer:
                assert answer.status == 200
        await eventually(lambda: _value(a.requests), what="webhook-a paged at once")
        service.kill()
        row = await db.run(later_page)
        assert (row.status, row.attempts, b.requests) == ("pending", 0, [])
        await service.start()
        await eventually(lambda: _value(b.requests), what="webhook-b paged after the restart")

        async def recorded() -> Any:
            found = await db.run(later_page)
            return found if found.status == "sent" else None

        row = await eventually(recorded, what="webhook-b recorded sent")
        assert row.attempts == 1
        assert len(b.requests) == 1 and len(a.requests) == 1
    finally:
        service.stop()
        await db.close()


def rules_directory(rules: str, urgency: str = "high") -> str:
    return directory("http://a.example/hook", "http://b.example/hook", rules, urgency)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_directory(text, {}, "d.yaml")
    return raised.value.problems


def test_rules_parse_into_contacts_and_delays() -> None:
    parsed = parse_directory(rules_directory(A_THEN_B), {})
    alice = parsed.users["alice"]
    assert [(r.contact, r.after) for r in alice.rules("high")] == [
        ("webhook-a", timedelta(0)),
        ("webhook-b", timedelta(seconds=3)),
    ]
    # No rules for low: every contact at once.
    assert [(r.contact, r.after) for r in alice.rules("low")] == [
        ("webhook-a", timedelta(0)),
        ("webhook-b", timedelta(0)),
    ]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # a contact the user does not have
        (
            "{high: [{contact: webhook-a, after: 0m}, {contact: phone, after: 5m}]}",
            "d.yaml: users[0].notification_rules.high[1].contact: no contact named 'phone'",
        ),
        # not a Prometheus duration
        (
            "{high: [{contact: webhook-a, after: 5 minutes}]}",
            "d.yaml: users[0].notification_rules.high[0].after: '5 minutes' is not a duration",
        ),
        # a negative delay is not a duration either
        (
            "{high: [{contact: webhook-a, after: -5m}]}",
            "d.yaml: users[0].notification_rules.high[0].after: '-5m' is not a duration",
        ),
        # an urgency that does not exist
        (
            "{urgent: [{contact: webhook-a, after: 0m}]}",
            "d.yaml: users[0].notification_rules.urgent: unknown key",
        ),
        # a rule without its delay
        (
            "{high: [{contact: webhook-a}]}",
            "d.yaml: users[0].notification_rules.high[0].after: required",
        ),
        # an unknown key in a rule
        (
            "{high: [{contact: webhook-a, after: 0m, repeat: 2}]}",
            "d.yaml: users[0].notification_rules.high[0].repeat: unknown key",
        ),
        # the same contact twice for one urgency
        (
            "{high: [{contact: webhook-a, after: 0m}, {contact: webhook-a, after: 5m}]}",
            "d.yaml: users[0].notification_rules.high[1].contact: 'webhook-a' already has a rule",
        ),
        # an empty list
        ("{high: []}", "d.yaml: users[0].notification_rules.high: at least one rule"),
        # not a mapping
        ("[webhook-a]", "d.yaml: users[0].notification_rules: expected a mapping"),
    ],
)
def test_a_bad_rule_is_a_config_error_with_its_path(rules: str, expected: str) -> None:
    found = problems(rules_directory(rules))
    assert any(p.startswith(expected) for p in found), found


def test_an_unknown_route_urgency_is_a_config_error_with_its_path() -> None:
    found = problems(rules_directory(A_THEN_B, urgency="urgent"))
    assert found == [
        "d.yaml: routes[0].urgency: expected one of high, low, by_severity",
    ]


def test_every_bad_rule_is_reported_at_once() -> None:
    found = problems(
        rules_directory("{high: [{contact: phone, after: 0m}], low: [{contact: x, after: 1q}]}")
    )
    assert [p.split(":")[1].strip() for p in found] == [
        "users[0].notification_rules.high[0].contact",
        "users[0].notification_rules.low[0].contact",
        "users[0].notification_rules.low[0].after",
    ]
