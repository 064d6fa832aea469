"""Grafana's links, screenshot and values reach the pages: a real HTTP receiver gets the
webhook and Slack pages, a real SMTP server the e-mail, and the incident's web page shows
them; only http(s) URLs become links. On both databases; the renderers' own rules for
what Grafana sends are pure tests."""

from __future__ import annotations

import copy
import email
import html
import json
from datetime import timedelta
from email import policy as email_policy
from typing import Any

from oncall.clock import system_clock
from oncall.ingest.grafana import parse_grafana
from oncall.notify.messages import html_body, slack_json, text_body, webhook_json
from oncall.web.keys import RUNTIME
from tests.notify.test_retry import make_page
from tests.support.factories import ALICE_TOKEN, BOB_TOKEN, load_payload
from tests.support.ui import log_in
from tests.support.waiting import eventually

GRAFANA_TOKEN = "grafana-token-0123456789abcdefghijklmnopqrstuv"
GRAFANA_AUTH = {"Authorization": f"Bearer {GRAFANA_TOKEN}"}
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
SILENCE_US = (
    "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
    "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1"
)
SILENCE_EU = SILENCE_US.replace("T2", "T1").replace("us-1", "eu-1")
RUNBOOK = "https://myrunbook.com/runbook/1234"
# What Grafana fills in when the rule is linked to a panel and takes screenshots.
DASHBOARD = "https://play.grafana.org/d/abc123?from=1634017863157&orgId=1&to=1634021463157"
PANEL = DASHBOARD + "&viewPanel=4"
IMAGE = "https://images.example.com/grafana/abc123.png"
VALUES = '{"B": 44.23943737541908, "C": 1}'


def directory(receiver_url: str) -> str:
    return f"""
integrations:
  - {{name: grafana, type: grafana, token: "{GRAFANA_TOKEN}"}}
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: webhook, url: "{receiver_url}/webhook"}}
      - {{type: slack, url: "{receiver_url}/slack"}}
      - {{type: email, to: alice@example.com}}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: []}}
policies:
  - name: p
    levels:
      - {{notify: ["user:alice"], escalate_after: 1h}}
routes: [{{policy: p}}]
"""


def linked_to_a_panel() -> dict[str, Any]:
    """Return Grafana's documented body as it is when its rules are linked to a panel."""
    body = copy.deepcopy(load_payload("grafana_firing"))
    for alert in body["alerts"]:
        alert.update(dashboardURL=DASHBOARD, panelURL=PANEL, imageURL=IMAGE)
    return body


async def settled(client: Any, count: int) -> list[dict[str, Any]] | None:
    response = await client.get("/api/v1/notifications", headers=ALICE)
    rows = (await response.json())["notifications"]
    if len(rows) < count or any(row["status"] == "pending" for row in rows):
        return None
    return rows


async def test_grafanas_links_image_and_values_reach_every_page(make_client, receiver, smtp_server):
    sink, port = smtp_server
    client = await make_client(
        directory=directory(receiver.url),
        clock=system_clock,
        smtp_host="127.0.0.1",
        smtp_port=str(port),
    )
    client.app[RUNTIME].notifier.retry_base = timedelta(milliseconds=100)
    response = await client.post(
        "/api/v1/integrations/grafana", json=linked_to_a_panel(), headers=GRAFANA_AUTH
    )
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    rows = await eventually(lambda: settled(client, 3), what="the three pages to settle")
    assert {(row["contact_type"], row["status"]) for row in rows} == {
        ("webhook", "sent"),
        ("slack", "sent"),
        ("email", "sent"),
    }
    by_path = {request.path: json.loads(request.body) for request in receiver.requests}

    # The webhook: the first alert's links, screenshot and values, structured.
    incident = by_path["/hook/webhook"]["incident"]
    assert incident["links"] == [
        {"href": DASHBOARD, "text": "Grafana dashboard"},
        {"href": PANEL, "text": "Grafana panel"},
        {"href": SILENCE_US, "text": "Silence in Grafana"},
    ]
    assert incident["images"] == [{"src": IMAGE, "href": PANEL, "alt": "Panel image"}]
    assert incident["custom_details"] == {"values": {"B": 44.23943737541908, "C": 1}}
    links = by_path["/hook/webhook"]["links"]
    assert links["sources"][0] == "https://play.grafana.org/alerting/1afz29v7z/edit"
    assert links["alert"] == [{"text": "runbook_url", "href": RUNBOOK}]  # an annotation

    # Slack: each a link written <url|text>, `&` as Slack's entity; the screenshot a
    # picture; the values a line.
    slack = by_path["/hook/slack"]
    texts = json.dumps(slack)
    for url, name in [(DASHBOARD, "Grafana dashboard"), (SILENCE_US, "Silence in Grafana")]:
        assert json.dumps(f"<{url.replace('&', '&amp;')}|{name}>")[1:-1] in texts, name
    assert f"<{RUNBOOK}|runbook_url>" in texts
    assert {"type": "image", "image_url": IMAGE, "alt_text": "Panel image"} in slack["blocks"]
    assert json.dumps(f"*values:* {VALUES}")[1:-1] in texts

    # E-mail: the text names each URL, the HTML links it and shows the screenshot.
    [envelope] = sink.messages
    message = email.message_from_bytes(envelope.content, policy=email_policy.default)
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert f"Grafana panel: {PANEL}\n" in text and f"Silence in Grafana: {SILENCE_US}\n" in text
    assert f"runbook_url: {RUNBOOK}\n" in text
    assert f"values: {VALUES}\n" in text
    page_html = message.get_body(("html",)).get_content()
    for url in (DASHBOARD, PANEL, SILENCE_US, RUNBOOK):
        assert f'<a href="{html.escape(url)}">' in page_html, url
    assert f'<img src="{html.escape(IMAGE)}" alt="Panel image"' in page_html

    # The incident's web page: every alert's links as links, its values as text.
    await log_in(client)
    web = await (await client.get(f"/incidents/{incident_id}")).text()
    for url in (DASHBOARD, PANEL, SILENCE_US, SILENCE_EU, IMAGE, RUNBOOK):
        assert f'<a href="{html.escape(url)}" rel="noopener noreferrer">' in web, url
    assert "44.23943737541908" in web


def page_of(**fields: str) -> Any:
    """Return a page of an incident whose first alert is Grafana's with `fields` set."""
    body = copy.deepcopy(load_payload("grafana_firing"))
    body["alerts"][0].update(fields)
    first = parse_grafana(body).alerts[0]
    return make_page(annotations={"summary": "High memory usage"}, context=first.context)


def test_a_grafana_url_that_is_not_http_is_shown_as_text_on_every_page():
    page = page_of(
        dashboardURL="javascript:alert(1)",
        silenceURL="https://grafana.example/alerting/silence/new?a=1&b=2",
        imageURL="data:image/png;base64,AAAA",
    )
    body = html_body(page)
    assert 'href="javascript:' not in body and 'src="data:' not in body
    assert "Grafana dashboard: javascript:alert(1)" in body
    assert 'href="https://grafana.example/alerting/silence/new?a=1&amp;b=2"' in body
    slack = slack_json(page)
    texts = json.dumps(slack)
    assert "Grafana dashboard: javascript:alert(1)" in texts and "<javascript:" not in texts
    assert not [block for block in slack["blocks"] if block["type"] == "image"]
    assert "Grafana dashboard: javascript:alert(1)\n" in text_body(page)


def test_a_screenshot_over_plain_http_is_a_link_not_a_picture():
    # A reader's mail client or Slack fetches a picture: never over plain http.
    page = page_of(imageURL="http://grafana.internal/render/abc.png")
    assert "<img" not in html_body(page)
    assert 'href="http://grafana.internal/render/abc.png"' in html_body(page)
    assert not [block for block in slack_json(page)["blocks"] if block["type"] == "image"]


def test_the_value_string_is_a_detail_of_the_page_too():
    page = page_of(valueString="[ var='B' labels={zone=us-1} value=44.2 ]")
    assert "valueString: [ var='B' labels={zone=us-1} value=44.2 ]\n" in text_body(page)
    assert webhook_json(page)["incident"]["custom_details"]["valueString"].startswith("[ var=")
