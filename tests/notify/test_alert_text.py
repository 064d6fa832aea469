"""Alert text cannot break a page: control characters from Alertmanager and Events v2 reach
a real SMTP server as a one-line subject; a message that cannot be built fails at once
while the incident's other pages go out; Slack gets no mention and no link made of alert
text; e-mail links are http(s) only. Every test runs on both database backends."""

from __future__ import annotations

import email
import json
import re
from datetime import timedelta
from email import policy as email_policy
from typing import Any

from oncall import settings
from oncall.clock import system_clock
from oncall.web.keys import RUNTIME
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.waiting import eventually

AM_URL = "/api/v1/integrations/alertmanager"
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
PUBLIC_URL = "https://oncall.example.com"
EMAIL = "{type: email, to: alice@example.com}"


def directory(contacts: str) -> str:
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts: [{contacts}]
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: []}}
policies:
  - name: p
    levels:
      - {{notify: ["user:alice"], escalate_after: 1h}}
      - {{notify: ["user:bob"], escalate_after: 1h}}
routes: [{{policy: p}}]
"""


async def start(make_client: Any, contacts: str, smtp_port: int = 0, **settings: str) -> Any:
    if smtp_port:
        settings = {"smtp_host": "127.0.0.1", "smtp_port": str(smtp_port), **settings}
    client = await make_client(
        directory=directory(contacts),
        clock=system_clock,
        server_public_url=PUBLIC_URL,
        **settings,
    )
    # Retries 100 ms apart: a page retried five times settles within the test.
    client.app[RUNTIME].notifier.retry_base = timedelta(milliseconds=100)
    return client


async def settled(client: Any, count: int) -> list[dict[str, Any]] | None:
    """Return the `count` notifications once none is pending any more (sent or failed)."""
    response = await client.get("/api/v1/notifications", headers=ALICE)
    rows = (await response.json())["notifications"]
    if len(rows) < count or any(row["status"] == "pending" for row in rows):
        return None
    return rows


def by_contact(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["contact_type"]: row for row in rows}


async def alertmanager(client: Any, body: dict[str, Any]) -> int:
    response = await client.post(AM_URL, json=body, headers=AM_AUTH)
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    return int(incident_id)


async def events_v2(client: Any, payload: dict[str, Any], **fields: Any) -> int:
    body = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "disk-db1",
        "payload": payload,
        **fields,
    }
    response = await client.post("/v2/enqueue", data=json.dumps(body))
    assert response.status == 202, await response.text()
    incidents = await (await client.get("/api/v1/incidents", headers=ALICE)).json()
    [incident] = incidents["incidents"]
    return int(incident["id"])


def mail(sink: Any) -> Any:
    [envelope] = sink.messages
    return email.message_from_bytes(envelope.content, policy=email_policy.default)


def raw_subject_lines(sink: Any) -> list[bytes]:
    """Return the Subject header as written on the wire, with its folded lines."""
    [envelope] = sink.messages
    head = envelope.content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith(b"Subject:"))
    end = next((i for i in range(start + 1, len(head)) if not head[i][:1].isspace()), len(head))
    return head[start:end]


async def test_control_characters_from_alertmanager_still_reach_the_mailbox(
    make_client, smtp_server
):
    sink, port = smtp_server
    client = await start(make_client, EMAIL, port)
    alert = make_alert("db1\r\nX-Injected: instance")
    alert["labels"]["severity"] = "critical\nX-Injected: yes"
    body = make_webhook([alert])
    body["commonLabels"].update(
        severity=alert["labels"]["severity"], instance="db1\r\nX-Injected: instance"
    )
    body["commonAnnotations"] = {"summary": "Disk\x1b[31m full\x07 on\tdb1\u2028more text"}
    incident_id = await alertmanager(client, body)
    [row] = await eventually(lambda: settled(client, 1), what="the page to settle")
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    message = mail(sink)
    # The severity's newline is a space: one subject, no header of the alert's making.
    assert message["Subject"] == (
        f"[TRIGGERED] [critical x-injected: yes] Disk[31m full on db1 (#{incident_id})"
    )
    assert message["X-Injected"] is None
    assert b"X-Injected" not in b"".join(raw_subject_lines(sink)[1:])  # not a folded header
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "instance=db1 X-Injected: instance\n" in text


async def test_control_characters_from_events_v2_still_reach_the_mailbox(make_client, smtp_server):
    sink, port = smtp_server
    client = await start(make_client, EMAIL, port)
    incident_id = await events_v2(
        client,
        {
            "summary": "Disk full\x07\x1b on db1\r\nfree: 2%",
            "source": "db1\nX-Injected: yes",
            "severity": "critical\r\n",
            "component": "postgres\u2029",
        },
    )
    [row] = await eventually(lambda: settled(client, 1), what="the page to settle")
    assert (row["status"], row["attempts"]) == ("sent", 1)
    message = mail(sink)
    assert message["Subject"] == f"[TRIGGERED] [critical] Disk full on db1 (#{incident_id})"
    assert message["X-Injected"] is None
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "source=db1 X-Injected: yes\n" in text and "component=postgres \n" in text
    assert "Disk full on db1\nfree: 2%" in text  # the summary keeps its lines


async def test_a_message_that_cannot_be_built_fails_at_once_and_the_webhook_still_pages(
    make_client, smtp_server, receiver, monkeypatch
):
    sink, port = smtp_server
    # A display name wrapped onto a continuation line in settings.ini: the address is
    # valid, the header cannot be written. Start-up refuses it now (tests/test_settings.py);
    # let it through here, as the last way left to make a message unbuildable, so the page
    # path's own refusal is still checked.
    monkeypatch.setitem(settings.SPEC["smtp"], "from", (str, "oncall@localhost"))
    client = await start(
        make_client,
        f'{EMAIL}, {{type: webhook, url: "{receiver.url}"}}',
        port,
        smtp_from="On-call pager\n<pager@example.com>",
    )
    incident_id = await alertmanager(client, make_webhook([make_alert("db1")]))
    rows = await eventually(lambda: settled(client, 2), what="both pages to settle")
    pages = by_contact(rows)
    failed, sent = pages["email"], pages["webhook"]
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert [a["outcome"] for a in failed["attempt_log"]] == ["permanent"]
    assert failed["last_error"].startswith("could not build the e-mail: ")
    assert "From address" in failed["last_error"] and "control character" in failed["last_error"]
    assert sink.messages == []
    assert (sent["status"], sent["attempts"]) == ("sent", 1)
    [request] = receiver.requests
    assert json.loads(request.body)["incident"]["id"] == incident_id
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    [reason] = [
        e["detail"]["reason"] for e in details["timeline"] if e["type"] == "notification.failed"
    ]
    assert reason == failed["last_error"]


# A Slack link or mention is anything between angle brackets.
SLACK_MARKUP = re.compile(r"<([^<>]*)>")


def strings(value: Any) -> list[str]:
    """Return every string in a decoded JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


async def test_slack_gets_alert_text_escaped_never_a_mention_or_a_foreign_link(
    make_client, receiver
):
    client = await start(make_client, f'{{type: slack, url: "{receiver.url}"}}')
    alert = make_alert("<@U123>")
    alert["labels"]["team"] = "<#C123> & <!subteam^S1>"
    alert["labels"]["severity"] = "<!here>"
    alert["generatorURL"] = "https://prometheus.example/graph?g0.expr=up>1|x&y=<z>"
    body = make_webhook([alert])
    body["commonLabels"].update(severity="<!here>", team=alert["labels"]["team"])
    body["commonAnnotations"] = {
        "summary": "<!channel> Disk full <https://evil.example/ack|Acknowledge now> & more"
    }
    body["externalURL"] = "javascript:alert(1)"
    incident_id = await alertmanager(client, body)
    [request] = await eventually(lambda: _requests(receiver), what="the Slack message")
    message = json.loads(request.body)
    texts = strings(message)
    for mention in ("<!channel>", "<!here>", "<@U123>", "<#C123>", "<!subteam^S1>"):
        assert not any(mention in text for text in texts), mention
    # Every link is http(s), to the incident or the alert's own (encoded) source.
    targets = [m.partition("|")[0] for text in texts for m in SLACK_MARKUP.findall(text)]
    assert targets == [
        f"{PUBLIC_URL}/api/v1/incidents/{incident_id}",
        "https://prometheus.example/graph?g0.expr=up%3E1%7Cx&amp;y=%3Cz%3E",
    ]
    assert not any("|Acknowledge now>" in text for text in texts)
    section = message["blocks"][1]["text"]
    assert section["verbatim"] is True
    assert (
        "&lt;!channel&gt; Disk full &lt;https://evil.example/ack|Acknowledge now&gt; &amp;"
        in (section["text"])
    )
    assert "`team=&lt;#C123&gt; &amp; &lt;!subteam^S1&gt;`" in section["text"]
    assert "Alertmanager: javascript:alert(1)" in message["blocks"][2]["text"]["text"]
    assert message["text"].startswith("[TRIGGERED] [&lt;!here&gt;] &lt;!channel&gt; Disk full")
    buttons = [b["url"] for b in message["blocks"][3]["elements"]]
    assert len(buttons) == 3 and all(url.startswith(f"{PUBLIC_URL}/a/") for url in buttons)


async def _requests(receiver: Any) -> Any:
    return receiver.requests or None


HREF = re.compile(r"""href\s*=\s*["']?([^"' >]*)""", re.IGNORECASE)


async def test_email_links_only_http_urls_from_alertmanager(make_client, smtp_server):
    sink, port = smtp_server
    client = await start(make_client, EMAIL, port)
    alert = make_alert("db1")
    alert["generatorURL"] = "javascript:alert(document.cookie)"
    second = make_alert("db2")
    second["generatorURL"] = "JavaScript:alert(2)"
    body = make_webhook([alert, second])
    body["externalURL"] = "data:text/html,<script>alert(3)</script>"
    await alertmanager(client, body)
    await eventually(lambda: settled(client, 1), what="the page to settle")
    page_html = mail(sink).get_body(("html",)).get_content()
    hrefs = HREF.findall(page_html)
    assert hrefs and all(h.startswith(f"{PUBLIC_URL}/") for h in hrefs), hrefs
    assert 'href="javascript:' not in page_html.lower()
    assert "Source: javascript:alert(document.cookie)" in page_html  # shown, as text
    assert "Alertmanager: data:text/html,&lt;script&gt;" in page_html


async def test_email_links_only_http_urls_from_events_v2(make_client, smtp_server):
    sink, port = smtp_server
    client = await start(make_client, EMAIL, port)
    await events_v2(
        client,
        {"summary": "Disk full on db1", "source": "db1", "severity": "critical"},
        client_url="javascript:alert(1)",
    )
    await eventually(lambda: settled(client, 1), what="the page to settle")
    page_html = mail(sink).get_body(("html",)).get_content()
    hrefs = HREF.findall(page_html)
    assert hrefs and all(h.startswith(f"{PUBLIC_URL}/") for h in hrefs), hrefs
    assert 'href="javascript:' not in page_html
