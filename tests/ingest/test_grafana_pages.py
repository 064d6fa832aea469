"""Grafana's links and values reach the pages: a real HTTP receiver gets the webhook and
Slack pages, a real SMTP server the e-mail, and the incident's web page shows them; only
http(s) URLs become links. On both databases; the renderers' own rules are pure tests."""

from __future__ import annotations

import copy
import email
import html
import json
from datetime import timedelta
from email import policy as email_policy
from typing import Any

from oncall.clock import system_clock
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
# What Grafana fills in when the rule is linked to a panel and takes screenshots.
DASHBOARD = "https://play.grafana.org/d/abc123?from=1634017863157&orgId=1&to=1634021463157"
PANEL = DASHBOARD + "&viewPanel=4"
IMAGE = "https://images.example.com/grafana/abc123.png"


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


async def test_grafanas_links_and_values_reach_every_page(make_client, receiver, smtp_server):
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

    # The webhook: the values among the annotations, the links as links.
    page = by_path["/hook/webhook"]
    assert page["incident"]["annotations"]["grafana_values"] == "B=44.23943737541908, C=1"
    assert page["links"]["alert"] == [
        {"text": "Grafana dashboard", "href": DASHBOARD},
        {"text": "Grafana panel", "href": PANEL},
        {"text": "Silence in Grafana", "href": SILENCE_US},
        {"text": "Panel image", "href": IMAGE},
        {"text": "runbook_url", "href": "https://myrunbook.com/runbook/1234"},
    ]
    assert page["links"]["sources"][0] == "https://play.grafana.org/alerting/1afz29v7z/edit"

    # Slack: each a link written <url|name>, `&` as Slack's entity; the values as text.
    slack = by_path["/hook/slack"]
    links = slack["blocks"][2]["text"]["text"]
    for url, name in [(DASHBOARD, "Grafana dashboard"), (SILENCE_US, "Silence in Grafana")]:
        assert f"<{url.replace('&', '&amp;')}|{name}>" in links
    assert f"<{IMAGE}|Panel image>" in links
    assert "*Values:* B=44.23943737541908, C=1" in slack["blocks"][1]["text"]["text"]

    # E-mail: the text names each URL, the HTML links it.
    [envelope] = sink.messages
    message = email.message_from_bytes(envelope.content, policy=email_policy.default)
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert f"Grafana panel: {PANEL}\n" in text and f"Silence in Grafana: {SILENCE_US}\n" in text
    assert "Values: B=44.23943737541908, C=1\n" in text
    page_html = message.get_body(("html",)).get_content()
    for url in (DASHBOARD, PANEL, SILENCE_US, IMAGE):
        assert f'<a href="{html.escape(url)}">' in page_html, url

    # The incident's web page: every alert's links as links, its values as text.
    await log_in(client)
    web = await (await client.get(f"/incidents/{incident_id}")).text()
    eu = SILENCE_US.replace("T2", "T1").replace("us-1", "eu-1")
    for url in (DASHBOARD, PANEL, SILENCE_US, eu, IMAGE):
        assert f'<a href="{html.escape(url)}" rel="noopener noreferrer">' in web, url
    assert "B=44.23943737541908, C=1" in web


def grafana_page(**annotations: str) -> Any:
    return make_page(annotations={"summary": "High memory usage", **annotations})


def test_a_grafana_url_that_is_not_http_is_shown_as_text_on_every_page():
    page = grafana_page(
        grafana_dashboard_url="javascript:alert(1)",
        grafana_silence_url="https://grafana.example/alerting/silence/new?a=1&b=2",
        grafana_image_url="data:image/png;base64,AAAA",
    )
    body = html_body(page)
    assert 'href="javascript:' not in body and 'href="data:' not in body
    assert "Grafana dashboard: javascript:alert(1)" in body
    assert 'href="https://grafana.example/alerting/silence/new?a=1&amp;b=2"' in body
    slack = json.dumps(slack_json(page))
    assert "Grafana dashboard: javascript:alert(1)" in slack and "<javascript:" not in slack
    assert "Grafana dashboard: javascript:alert(1)\n" in text_body(page)
    assert webhook_json(page)["links"]["alert"] == [
        {
            "text": "Silence in Grafana",
            "href": "https://grafana.example/alerting/silence/new?a=1&b=2",
        }
    ]


def test_the_value_string_is_shown_when_there_are_no_values():
    with_both = grafana_page(grafana_values="B=1", grafana_value_string="[ var='B' value=1 ]")
    assert "Values: B=1\n" in text_body(with_both) and "var=" not in text_body(with_both)
    only_string = grafana_page(grafana_value_string="[ var='B' labels={} value=1 ]")
    assert "Value: [ var='B' labels={} value=1 ]\n" in text_body(only_string)
    assert "<p>Value: [ var=&#x27;B&#x27; labels={} value=1 ]</p>" in html_body(only_string)


def test_a_page_without_grafanas_fields_shows_no_more_than_before():
    page = make_page()
    assert webhook_json(page)["links"]["alert"] == []
    assert "Values" not in text_body(page) and "Grafana" not in html_body(page)
