"""The signed "Snooze 1h" link beside acknowledge and resolve: in the page of every channel
(webhook JSON, Slack buttons, e-mail text and HTML), and the same confirm-then-act page as
the others: GET shows what it would do and changes nothing, POST snoozes for an hour as
the link's user; a tampered, expired or foreign link is refused, and on a resolved
incident it answers as the acknowledge link does. Pages reach real receivers."""

from __future__ import annotations

import email
import json
from datetime import timedelta
from email import policy as email_policy
from typing import Any

import pytest

from oncall.notify import links
from oncall.web.keys import RUNTIME
from tests.incidents.test_actions import settled
from tests.notify.test_notifications import (
    ALICE,
    directory,
    open_incident,
    received,
    start,
    webhook_contact,
)
from tests.support.db import snapshot
from tests.support.waiting import eventually

PUBLIC_URL = "https://oncall.example.com"


async def _value(value: Any) -> Any:
    return value


async def linked(make_client: Any, receiver: Any) -> tuple[Any, int, dict[str, str]]:
    """Return a client on the fake clock, its incident, and the links of alice's page."""
    client = await make_client(
        directory=directory(webhook_contact(receiver)), server_public_url=PUBLIC_URL
    )
    incident_id = await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the page")
    return client, incident_id, json.loads(request.body)["links"]


async def details(client: Any, incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    answer: dict[str, Any] = await response.json()
    return answer


def path_of(url: str) -> str:
    assert url.startswith(f"{PUBLIC_URL}/a/")
    return url.removeprefix(PUBLIC_URL)


async def test_a_webhook_page_carries_a_snooze_link_beside_acknowledge_and_resolve(
    make_client, receiver
):
    client = await start(make_client, webhook_contact(receiver))
    await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the page")
    body = json.loads(request.body)
    offered = {k: v for k, v in body["links"].items() if k in links.ACTIONS}
    assert set(offered) == {"acknowledge", "snooze", "resolve"}
    assert all(url.startswith(f"{PUBLIC_URL}/a/") for url in offered.values())
    assert len(set(offered.values())) == 3  # each signs its own action


async def test_a_slack_page_has_a_snooze_1h_button(make_client, receiver):
    client = await start(make_client, f'[{{type: slack, url: "{receiver.url}"}}]')
    await open_incident(client)
    [request] = await eventually(received(receiver, 1), what="the Slack message")
    [actions] = [b for b in json.loads(request.body)["blocks"] if b["type"] == "actions"]
    buttons = {b["text"]["text"]: b["url"] for b in actions["elements"]}
    assert list(buttons) == ["Acknowledge", "Snooze 1h", "Resolve"]
    assert buttons["Snooze 1h"].startswith(f"{PUBLIC_URL}/a/")


async def test_an_email_page_has_the_snooze_link_in_text_and_html(make_client, smtp_server):
    sink, port = smtp_server
    client = await start(
        make_client,
        "[{type: email, to: alice@example.com}]",
        smtp_host="127.0.0.1",
        smtp_port=str(port),
        smtp_from="pager@ex.com",
    )
    await open_incident(client)
    [envelope] = await eventually(lambda: _value(sink.messages or None), what="the mail")
    message = email.message_from_bytes(envelope.content, policy=email_policy.default)
    text = message.get_body(("plain",)).get_content()
    [line] = [line for line in text.splitlines() if line.startswith("Snooze 1h: ")]
    assert line.startswith(f"Snooze 1h: {PUBLIC_URL}/a/")
    url = line.removeprefix("Snooze 1h: ")
    page_html = message.get_body(("html",)).get_content()
    assert f'<a href="{url}"' in page_html and ">Snooze 1h</a>" in page_html


async def test_the_snooze_link_confirms_on_get_and_snoozes_for_an_hour_on_post(
    make_client, receiver, clock
):
    client, incident_id, offered = await linked(make_client, receiver)
    path = path_of(offered["snooze"])
    before = await settled(client)
    page = await client.get(path)
    assert page.status == 200
    shown = await page.text()
    assert f"Snooze 1h incident #{incident_id}?" in shown and "<b>alice</b>" in shown
    assert "<form method='post'>" in shown
    assert await snapshot(client) == before  # opening the link changes nothing

    done = await client.post(path)
    assert done.status == 200
    assert "Snooze 1h done as alice" in await done.text()
    incident = await details(client, incident_id)
    until = (clock() + links.SNOOZE).replace(microsecond=0)
    assert incident["status"] == "acknowledged" and incident["acknowledged_by"] == "alice"
    assert incident["snoozed_until"] == until.isoformat().replace("+00:00", "Z")
    assert incident["next_step"] is None
    [snoozed] = [e for e in incident["timeline"] if e["type"] == "incident.snoozed"]
    assert snoozed["actor"] == "alice" and snoozed["detail"]["until"] == until.isoformat()


async def test_the_snooze_link_ends_in_level_1_paging_again(make_client, receiver, clock):
    client, incident_id, offered = await linked(make_client, receiver)
    assert (await client.post(path_of(offered["snooze"]))).status == 200
    clock.advance(links.SNOOZE)
    assert await client.app[RUNTIME].incidents.run_wake(incident_id)
    await eventually(received(receiver, 2), what="alice paged after the snooze")
    assert (await details(client, incident_id))["status"] == "triggered"


def _tampered(token: str) -> str:
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


@pytest.mark.parametrize("method", ["get", "post"])
async def test_a_tampered_expired_or_foreign_snooze_link_is_refused(
    make_client, receiver, clock, method
):
    client, incident_id, offered = await linked(make_client, receiver)
    token = path_of(offered["snooze"]).removeprefix("/a/")
    key = client.app[RUNTIME].notifier.link_key
    refused = [
        _tampered(token),
        # Signed for acknowledging, its action changed to snooze: the MAC no longer fits.
        _swapped(links.sign(key, incident_id, "acknowledge", "alice", clock() + timedelta(1))),
        links.sign(key, incident_id, "snooze", "alice", clock() - timedelta(seconds=1)),
        links.sign(b"another-key-entirely", incident_id, "snooze", "alice", clock() + timedelta(1)),
    ]
    before = await settled(client)
    for bad in refused:
        answer = await getattr(client, method)(f"/a/{bad}")
        assert answer.status == 403, bad
        assert "Link refused" in await answer.text()
    assert await snapshot(client) == before


def _swapped(token: str) -> str:
    """Return `token` with its payload's action replaced by snooze, the MAC kept."""
    payload, _, mac = token.partition(".")
    decoded = links._unb64(payload).replace(b":acknowledge:", b":snooze:")
    return f"{links._b64(decoded)}.{mac}"


async def test_a_snooze_link_on_a_resolved_incident_answers_as_the_acknowledge_link(
    make_client, receiver
):
    client, incident_id, offered = await linked(make_client, receiver)
    response = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=ALICE)
    assert response.status == 200
    await eventually(received(receiver, 2), what="the resolved message")
    before = await settled(client)
    acknowledged = await client.post(path_of(offered["acknowledge"]))
    snoozed = await client.post(path_of(offered["snooze"]))
    assert acknowledged.status == snoozed.status == 409
    assert "Already resolved" in await snoozed.text()
    assert await snapshot(client) == before
    incident = await details(client, incident_id)
    assert incident["status"] == "resolved" and incident["snoozed_until"] is None
