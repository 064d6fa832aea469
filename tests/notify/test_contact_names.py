"""Pages point at contacts by a stable name, so a directory reload that removes or moves
a contact while a page retries sends it to the same contact, or to none."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from oncall.db.models import notifications
from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError
from oncall.web.keys import DIRECTORY, RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, AM_TOKEN, make_alert, make_webhook
from tests.support.receivers import HttpReceiver
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"


def directory(contacts: str) -> str:
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{contacts}]}}
policies:
  - {{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}
routes:
  - {{policy: p}}
"""


def test_contacts_are_named_by_type_unless_named() -> None:
    parsed = parse_directory(
        directory(
            '{type: email, to: a@example.com}, {type: webhook, url: "http://x/1"}, '
            '{type: webhook, url: "http://x/2"}, '
            '{type: webhook, url: "http://x/3", name: phone-bridge}'
        ),
        {},
    )
    names = [c.name for c in parsed.users["alice"].contacts]
    assert names == ["email", "webhook", "webhook-2", "phone-bridge"]


def test_a_duplicate_contact_name_is_named_as_an_error() -> None:
    text = directory(
        '{type: webhook, url: "http://x/1", name: webhook-2}, {type: webhook, url: "http://x/2"}'
    )
    with pytest.raises(ConfigError) as raised:
        parse_directory(text, {})
    assert any("users[0].contacts[1].name" in p for p in raised.value.problems)


async def test_a_retrying_page_follows_its_contact_when_another_is_removed(
    make_client: Any, clock: Any, aiohttp_server: Any
) -> None:
    """Alice's webhook page fails and waits for its retry; her e-mail contact, listed
    before it, is removed meanwhile: the retry still goes to her webhook."""
    receiver = HttpReceiver(statuses=[503])
    server = await aiohttp_server(receiver.app())
    url = str(server.make_url("/hook"))
    both = f'{{type: email, to: a@example.com}}, {{type: webhook, url: "{url}"}}'
    client = await make_client(directory=directory(both))
    runtime = client.app[RUNTIME]
    # The test sends the retry itself: the scheduler would send it 2 s (of the wall clock)
    # after the failure, racing it on a loaded machine.
    runtime.timers.pause()
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    [incident_id] = (await response.json())["incidents"]

    def webhook_row(conn: Any) -> Any:
        query = select(notifications).where(
            notifications.c.incident_id == incident_id, notifications.c.contact_type == "webhook"
        )
        return conn.execute(query).one()

    async def retrying() -> Any:
        row = await runtime.db.run(webhook_row)
        return row if row.status == "pending" and receiver.requests else None

    row = await eventually(retrying, what="the webhook page's retry")
    holder = client.app[DIRECTORY]
    Path(holder.current.source).write_text(directory(f'{{type: webhook, url: "{url}"}}'))
    holder.reload()
    clock.advance(timedelta(minutes=1))
    assert await runtime.notifier.deliver(row.id) == "delivered"
    assert len(receiver.requests) == 2
    assert json.loads(receiver.requests[1].body)["incident"]["id"] == incident_id
    assert (await runtime.db.run(webhook_row)).status == "sent"
