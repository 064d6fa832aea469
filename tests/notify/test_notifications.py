"""Pages through real channels: an HTTP receiver, Slack format, SMTP; retries and dead letters;
signed links; cancellation; resolved messages; storms."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
from datetime import timedelta
from email import policy as email_policy
from typing import Any

import redis

from oncall.clock import system_clock
from oncall.notify import links
from oncall.web.keys import RUNTIME
from tests.support.db import count_rows, snapshot
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.ops import OPS
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
SECRET = "webhook-secret-1"


def directory(contacts: str, levels: tuple[str, str] = ("1h", "1h")) -> str:
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts: {contacts}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: []}}
policies:
  - name: p
    levels:
      - {{notify: ["user:alice"], escalate_after: {levels[0]}}}
      - {{notify: ["user:bob"], escalate_after: {levels[1]}}}
routes: [{{policy: p}}]
"""


def webhook_contact(receiver: Any) -> str:
    return f'[{{type: webhook, url: "{receiver.url}", secret: "{SECRET}"}}]'


async def start(make_client: Any, contacts: str, **settings: str) -> Any:
    client = await make_client(
        directory=directory(contacts),
        clock=system_clock,
        server_public_url="https://oncall.example.com",
        **settings,
    )
    client.app[RUNTIME].notifier.retry_base = timedelta(milliseconds=100)
    return client


async def open_incident(client: Any, alerts: int = 1) -> int:
    body = make_webhook([make_alert(f"db{i}") for i in range(alerts)])
    response = await client.post(URL, json=body, headers=AM_AUTH)
    [incident_id] = (await response.json())["incidents"]
    return incident_id


async def notifications(client: Any, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications", params=query, headers=ALICE)
    assert response.status == 200
    return (await response.json())["notifications"]


async def _value(value: Any) -> Any:
    return value


def received(target: Any, count: int) -> Any:
    return lambda: _value(target.requests if len(target.requests) >= count else None)


async def test_a_page_reaches_a_webhook_signed_and_with_its_delivery_id(make_client, receiver):
    client = await start(make_client, webhook_contact(receiver))
    incident_id = await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the page")
    # The signature, checked independently of the service's code.
    timestamp, _, mac = request.headers["X-Oncall-Signature"].partition(",v1=")
    timestamp = timestamp.removeprefix("t=")
    expected = hmac.new(
        SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(mac, expected)
    body = json.loads(request.body)
    [row] = await eventually(lambda: _sent(client), what="sent status")
    assert request.headers["X-Oncall-Delivery"] == str(row["id"]) == str(body["delivery"])
    assert body["event"] == "incident.triggered"
    assert body["incident"]["id"] == incident_id
    assert body["incident"]["title"] == "DiskFull"
    assert body["incident"]["severity"] == "critical"
    assert body["incident"]["labels"]["alertname"] == "DiskFull"
    assert body["incident"]["annotations"]["summary"] == "DiskFull on db0"
    assert (body["level"], body["repeat"], body["user"]) == (1, 0, "alice")
    assert body["links"]["incident"] == (
        f"https://oncall.example.com/api/v1/incidents/{incident_id}"
    )
    assert body["links"]["sources"] == ["http://prometheus:9090/graph?g0.expr=DiskFull"]
    assert body["links"]["alertmanager"] == "http://alertmanager:9093"
    assert body["links"]["acknowledge"].startswith("https://oncall.example.com/a/")
    assert body["links"]["resolve"].startswith("https://oncall.example.com/a/")
    assert row["status"] == "sent" and row["attempts"] == 1
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    assert "notification.sent" in [e["type"] for e in details["timeline"]]


async def _sent(client: Any) -> Any:
    rows = await notifications(client, status="sent")
    return rows or None


async def test_a_page_reaches_slack_as_blocks(make_client, receiver):
    client = await start(make_client, f'[{{type: slack, url: "{receiver.url}"}}]')
    incident_id = await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the Slack message")
    message = json.loads(request.body)
    assert message["text"] == f"[TRIGGERED] [critical] DiskFull (#{incident_id})"
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds == ["header", "section", "section", "actions", "context"]
    assert "*Severity:* critical" in message["blocks"][1]["text"]["text"]
    assert "`alertname=DiskFull`" in message["blocks"][1]["text"]["text"]
    buttons = {b["text"]["text"]: b["url"] for b in message["blocks"][3]["elements"]}
    assert set(buttons) == {"Acknowledge", "Snooze 1h", "Resolve"}


async def test_a_page_arrives_by_email_with_text_and_html(make_client, smtp_server):
    sink, port = smtp_server
    client = await start(
        make_client,
        "[{type: email, to: alice@example.com}]",
        smtp_host="127.0.0.1",
        smtp_port=str(port),
        smtp_from="pager@ex.com",
    )
    incident_id = await open_incident(client)
    [envelope] = await eventually(lambda: _value(sink.messages or None), what="the mail")
    assert envelope.rcpt_tos == ["alice@example.com"]
    message = email.message_from_bytes(envelope.content, policy=email_policy.default)
    assert message["Subject"] == f"[TRIGGERED] [critical] DiskFull (#{incident_id})"
    assert message["From"] == "pager@ex.com"
    [row] = await eventually(lambda: _sent(client), what="sent status")
    assert message["X-Oncall-Delivery"] == str(row["id"])
    text = message.get_body(("plain",)).get_content()
    page_html = message.get_body(("html",)).get_content()
    assert "DiskFull on db0" in text and "/a/" in text
    assert "<h2>[TRIGGERED] [critical] DiskFull" in page_html


async def test_a_flaky_receiver_gets_the_page_on_the_third_attempt(make_client, receiver):
    receiver.statuses = [500, 500]
    client = await start(make_client, webhook_contact(receiver))
    await open_incident(client)
    [row] = await eventually(lambda: _sent(client), what="delivery")
    assert row["attempts"] == 3
    log = row["attempt_log"]
    assert [a["outcome"] for a in log] == ["retry", "retry", "delivered"]
    assert log[0]["error"].startswith("HTTP 500")
    # Stored spacing follows the backoff (base 100 ms in this test: 100, then 200).
    gaps = [r2.at - r1.at for r1, r2 in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.095 and gaps[1] >= 0.195
    ids = {r.headers["X-Oncall-Delivery"] for r in receiver.requests}
    assert ids == {str(row["id"])}  # the same idempotency key on every attempt


async def test_an_always_failing_receiver_gives_a_dead_letter_after_5_attempts(
    make_client, receiver
):
    receiver.default = 500
    client = await start(make_client, webhook_contact(receiver))
    incident_id = await open_incident(client)
    # Four waits from 2 s, doubling: about 30 s of backoff before the fifth attempt fails.
    [row] = await eventually(lambda: _failed(client), timeout=120, what="dead letter")
    assert row["attempts"] == 5 and len(receiver.requests) == 5
    assert [a["outcome"] for a in row["attempt_log"]] == ["retry"] * 5
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    failed = [e for e in details["timeline"] if e["type"] == "notification.failed"]
    assert len(failed) == 1 and failed[0]["detail"]["reason"].startswith("HTTP 500")
    health = await (await client.get("/health", headers=OPS)).json()
    assert health["checks"]["scheduler"]["failed_notifications"] == 1


async def _failed(client: Any) -> Any:
    rows = await notifications(client, status="failed")
    return rows or None


async def test_a_client_error_fails_at_once(make_client, receiver):
    receiver.default = 400
    client = await start(make_client, webhook_contact(receiver))
    await open_incident(client)
    [row] = await eventually(lambda: _failed(client), what="permanent failure")
    assert row["attempts"] == 1 and [a["outcome"] for a in row["attempt_log"]] == ["permanent"]


async def test_retry_after_is_honoured(make_client, receiver):
    receiver.statuses = [429]
    receiver.reply_headers = {"Retry-After": "1"}
    client = await start(make_client, webhook_contact(receiver))
    await open_incident(client)
    await eventually(lambda: _sent(client), what="delivery")
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.99


async def test_the_link_flow_get_confirms_post_acknowledges(make_client, receiver, key_prefix):
    client = await start(make_client, webhook_contact(receiver))
    incident_id = await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the page")
    # The receiver has the page before the sender records it as sent.
    await eventually(lambda: _sent(client), what="the page recorded as sent")
    ack = json.loads(request.body)["links"]["acknowledge"]
    path = ack.removeprefix("https://oncall.example.com")
    before = await snapshot(client)
    page = await client.get(path)
    assert page.status == 200
    assert "Acknowledge incident" in await page.text() and "alice" in await page.text()
    assert await snapshot(client) == before  # opening the link changes nothing

    token = path.removeprefix("/a/")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await client.post(f"/a/{tampered}")).status == 403
    key = client.app[RUNTIME].notifier.link_key
    expired = links.sign(
        key, incident_id, "acknowledge", "alice", system_clock() - timedelta(seconds=1)
    )
    assert (await client.post(f"/a/{expired}")).status == 403
    other_key = links.sign(
        b"another-key-entirely",
        incident_id,
        "acknowledge",
        "alice",
        system_clock() + timedelta(hours=1),
    )
    assert (await client.get(f"/a/{other_key}")).status == 403
    assert await snapshot(client) == before

    done = await client.post(path)
    assert done.status == 200
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    assert details["status"] == "acknowledged" and details["acknowledged_by"] == "alice"
    assert details["next_step"] is None  # escalation stopped
    jobs = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)

    async def removed() -> bool:
        return jobs.hkeys(f"{key_prefix}:escalation:jobs") == []

    try:  # the writer thread removes the job a moment after the acknowledgement commits
        await eventually(removed, what="the escalation job removed")
    finally:
        jobs.close()


async def test_an_acknowledgement_stops_pages_not_yet_sent(make_client, receiver):
    receiver.default = 503
    client = await start(make_client, webhook_contact(receiver))
    client.app[RUNTIME].notifier.retry_base = timedelta(seconds=30)  # the retry waits
    incident_id = await open_incident(client)
    await eventually(received(receiver, 1), what="first attempt")
    await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE)
    [row] = await notifications(client, incident=str(incident_id))
    assert row["status"] == "cancelled" and row["next_attempt_at"] is None


async def test_resolution_sends_one_resolved_message_to_everyone_paged(make_client, receiver):
    client = await start(make_client, webhook_contact(receiver))
    incident_id = await open_incident(client)
    await eventually(lambda: _sent(client), what="page")
    await client.post(
        URL, json=make_webhook([make_alert("db0", status="resolved")]), headers=AM_AUTH
    )
    requests = await eventually(received(receiver, 2), what="resolved message")
    resolved = json.loads(requests[1].body)
    assert resolved["event"] == "incident.resolved"
    assert resolved["incident"]["status"] == "resolved"
    assert "acknowledge" not in resolved["links"]
    rows = await notifications(client, incident=str(incident_id))
    assert sorted(r["kind"] for r in rows) == ["resolved", "trigger"]


async def test_a_storm_of_2000_alerts_pages_once_per_contact_per_level(make_client, receiver):
    client = await start(make_client, webhook_contact(receiver))
    incident_id = await open_incident(client, alerts=2000)
    await eventually(lambda: _sent(client), what="page")
    rows = await client.app[RUNTIME].db.run(count_rows)
    assert rows["alerts"] == 2000
    assert len(await notifications(client, incident=str(incident_id))) == 1
    assert len(receiver.requests) == 1


async def test_an_apprise_url_delivers_through_apprise(make_client, receiver):
    port = receiver.url.split(":")[2].split("/")[0]
    client = await start(make_client, f'[{{type: apprise, url: "json://127.0.0.1:{port}/hook"}}]')
    incident_id = await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the Apprise message")
    message = json.loads(request.body)
    assert message["title"] == f"[TRIGGERED] [critical] DiskFull (#{incident_id})"
    assert "DiskFull on db0" in message["message"]
    await eventually(lambda: _sent(client), what="sent status")


async def test_an_apprise_failure_is_retried(make_client, receiver):
    receiver.statuses = [500]
    port = receiver.url.split(":")[2].split("/")[0]
    client = await start(make_client, f'[{{type: apprise, url: "json://127.0.0.1:{port}/hook"}}]')
    await open_incident(client)
    [row] = await eventually(lambda: _sent(client), what="delivery")
    assert [a["outcome"] for a in row["attempt_log"]] == ["retry", "delivered"]


async def test_pending_deliveries_come_back_after_a_redis_flush(make_client, receiver, key_prefix):
    receiver.statuses = [503]
    client = await start(make_client, webhook_contact(receiver), scheduler_reconcile_interval="1s")
    client.app[RUNTIME].notifier.retry_base = timedelta(seconds=2)
    await open_incident(client)
    await eventually(received(receiver, 1), what="first attempt")
    jobs = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        key = f"{key_prefix}:notification:jobs"
        await eventually(lambda: _value(jobs.hlen(key) == 1), what="retry scheduled")
        jobs.delete(key, f"{key_prefix}:notification:run_times")  # Redis lost it
        await eventually(lambda: _value(jobs.hlen(key) == 1), what="job restored")
    finally:
        jobs.close()
    [row] = await eventually(lambda: _sent(client), what="delivery")
    assert row["attempts"] == 2


async def test_a_route_can_turn_resolved_messages_off(make_client, receiver):
    text = directory(webhook_contact(receiver)).replace(
        "routes: [{policy: p}]", "routes: [{policy: p, notify_resolved: false}]"
    )
    client = await make_client(directory=text, clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(lambda: _sent(client), what="page")
    await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=ALICE)
    rows = await notifications(client, incident=str(incident_id))
    assert [r["kind"] for r in rows] == ["trigger"]
