"""`POST /api/v1/users/{name}/test-page`: a labelled test message to each of a user's
contacts through the real channels, each outcome answered, no incident written."""

from __future__ import annotations

import json
from typing import Any

from oncall.clock import system_clock
from oncall.web.keys import RUNTIME
from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN
from tests.support.receivers import HttpReceiver

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}
CAROL_TOKEN = "carol-token-0123456789abcdefghijklmnopqrstuv"
CAROL = {"Authorization": f"Bearer {CAROL_TOKEN}"}


def directory(ok_url: str, failing_url: str) -> str:
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: webhook, name: push, url: "{ok_url}"}}
      - {{type: webhook, url: "{failing_url}"}}
      - {{type: email, to: alice@example.com}}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: b@example.com}}]}}
  - {{name: carol, role: admin, api_token: "{CAROL_TOKEN}"}}
policies:
  - {{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}
routes: [{{policy: p}}]
"""


async def start(make_client: Any, aiohttp_server: Any, smtp_server: Any) -> Any:
    ok, failing = HttpReceiver(), HttpReceiver(default=500)
    for receiver in (ok, failing):
        server = await aiohttp_server(receiver.app())
        receiver.url = str(server.make_url("/hook"))
    sink, port = smtp_server
    client = await make_client(
        directory=directory(ok.url, failing.url),
        clock=system_clock,
        smtp_host="127.0.0.1",
        smtp_port=str(port),
        smtp_from="oncall@example.com",
    )
    return client, ok, failing, sink


async def test_it_sends_a_test_to_each_contact_and_answers_each_outcome(
    make_client: Any, aiohttp_server: Any, smtp_server: Any
) -> None:
    client, ok, failing, sink = await start(make_client, aiohttp_server, smtp_server)
    before = await snapshot(client)
    response = await client.post("/api/v1/users/alice/test-page", headers=ALICE)
    assert response.status == 200
    assert (await response.json())["results"] == [
        {"contact": "push", "type": "webhook", "outcome": "sent", "error": None},
        {"contact": "webhook-2", "type": "webhook", "outcome": "failed", "error": "HTTP 500: nope"},
        {"contact": "email", "type": "email", "outcome": "sent", "error": None},
    ]
    [received] = ok.requests
    body = json.loads(received.body)
    assert body["event"] == "test" and body["incident"] is None
    assert body["message"] == "Test page from oncall: no incident" and body["user"] == "alice"
    assert len(failing.requests) == 1  # tried once, never retried: nothing is stored
    [mail] = sink.messages
    assert b"Subject: Test page from oncall: no incident" in mail.content
    assert await snapshot(client) == before  # no incident, alert or timeline entry
    assert await client.app[RUNTIME].notifier.list_notifications([], None, 10) == []


async def test_an_admin_may_test_anyone_and_a_responder_only_themselves(
    make_client: Any, aiohttp_server: Any, smtp_server: Any
) -> None:
    client, ok, _, _ = await start(make_client, aiohttp_server, smtp_server)
    response = await client.post("/api/v1/users/alice/test-page", headers=BOB)
    assert response.status == 403
    assert not ok.requests
    response = await client.post("/api/v1/users/alice/test-page")
    assert response.status == 401
    response = await client.post("/api/v1/users/alice/test-page", headers=CAROL)
    assert response.status == 200 and len(ok.requests) == 1
    response = await client.post("/api/v1/users/nobody/test-page", headers=CAROL)
    assert response.status == 404
    assert (await response.json())["field"] == "name"
    response = await client.post("/api/v1/users/carol/test-page", headers=CAROL)
    assert (response.status, (await response.json())["results"]) == (200, [])
