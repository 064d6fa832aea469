"""An Events v2 trigger's links, images and custom_details reach its pages: structured in
webhook JSON, links as links in e-mail HTML and Slack (only http(s); escaped), URL text in
plain text, pictures only from https; through real receivers, on both databases."""

from __future__ import annotations

import json
import re
from typing import Any

from oncall.ingest.context import AlertContext
from oncall.notify.messages import (
    MAX_PICTURES,
    Page,
    html_body,
    slack_json,
    text_body,
    webhook_json,
)
from tests.notify.test_alert_text import EMAIL, SLACK_MARKUP, events_v2, mail, settled, start
from tests.support.waiting import eventually

SCRIPT = "<script>alert(1)</script>"
DETAILS = {"free": "2%", "disks": [{"name": "sda", "used": 0.98}], "note": SCRIPT}
LINKS = [
    {"href": "https://runbooks.example.com/disk?a=1&b=2", "text": "Runbook <b>"},
    {"href": "javascript:alert(1)", "text": "Bad"},
]
IMAGES = [
    {"src": "https://g.example.com/render/disk.png", "href": "https://g.example.com/d/1"},
    {"src": "http://plain.example.com/p.png", "alt": "Plain"},
]
PAYLOAD = {"summary": "Disk full on db1", "source": "db1", "severity": "critical"}


async def trigger(client: Any) -> int:
    return await events_v2(
        client, {**PAYLOAD, "custom_details": DETAILS}, links=LINKS, images=IMAGES
    )


async def test_a_webhook_page_carries_the_context_structured(make_client, receiver):
    client = await start(make_client, f'{{type: webhook, url: "{receiver.url}"}}')
    await trigger(client)
    await eventually(lambda: settled(client, 1), what="the page")
    [request] = receiver.requests
    incident = json.loads(request.body)["incident"]
    assert incident["custom_details"] == DETAILS
    assert incident["links"] == LINKS
    assert incident["images"] == [
        {
            "src": "https://g.example.com/render/disk.png",
            "href": "https://g.example.com/d/1",
            "alt": "",
        },
        {"src": "http://plain.example.com/p.png", "href": "", "alt": "Plain"},
    ]


async def test_an_email_shows_links_as_escaped_links_and_https_pictures(make_client, smtp_server):
    sink, port = smtp_server
    client = await start(make_client, EMAIL, port)
    await trigger(client)
    await eventually(lambda: settled(client, 1), what="the page")
    message = mail(sink)
    page = message.get_body(("html",)).get_content()
    assert (
        '<li>Runbook &lt;b&gt;: <a href="https://runbooks.example.com/disk?a=1&amp;b=2">'
        "https://runbooks.example.com/disk?a=1&amp;b=2</a></li>" in page
    )
    assert "<li>Bad: javascript:alert(1)</li>" in page and 'href="javascript' not in page
    assert (
        '<a href="https://g.example.com/d/1"><img src="https://g.example.com/render/disk.png"'
        ' alt="image" style="max-width:100%"></a>' in page
    )
    assert 'src="http://plain' not in page  # plain http: a link, never fetched by the reader
    assert '<li>Image: Plain: <a href="http://plain.example.com/p.png">' in page
    assert SCRIPT not in page and "<td>note</td><td>&lt;script&gt;" in page
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Runbook <b>: https://runbooks.example.com/disk?a=1&b=2\n" in text
    assert "Image: image: https://g.example.com/render/disk.png\n" in text
    assert "Details:\n" in text and '  disks: [{"name": "sda", "used": 0.98}]\n' in text


async def test_slack_gets_escaped_links_and_an_image_block(make_client, receiver):
    client = await start(make_client, f'{{type: slack, url: "{receiver.url}"}}')
    await trigger(client)
    await eventually(lambda: settled(client, 1), what="the page")
    [request] = receiver.requests
    blocks = json.loads(request.body)["blocks"]
    texts = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    assert "<https://runbooks.example.com/disk?a=1&amp;b=2|Runbook &lt;b&gt;>" in texts
    assert "Bad: javascript:alert(1)" in texts
    # Only links of our making are markup: every <...> is an http(s) link.
    for inside in SLACK_MARKUP.findall(texts):
        assert inside.startswith(("https://", "http://")), inside
    assert "*note:* &lt;script&gt;alert(1)&lt;/script&gt;" in texts
    images = [b for b in blocks if b["type"] == "image"]
    assert images == [
        {"type": "image", "image_url": "https://g.example.com/render/disk.png", "alt_text": "image"}
    ]


def page(context: AlertContext) -> Page:
    return Page(
        delivery_id=7,
        event="incident.triggered",
        incident_id=3,
        status="triggered",
        title="Disk full",
        severity="critical",
        labels={},
        annotations={"summary": "Disk full"},
        level=1,
        repeat=0,
        user="alice",
        alert_count=1,
        incident_url="https://oncall.example.com/api/v1/incidents/3",
        context=context,
    )


def test_a_page_without_context_shows_none():
    empty = page(AlertContext())
    body = webhook_json(empty)["incident"]
    assert (body["custom_details"], body["links"], body["images"]) == (None, [], [])
    assert "Details:" not in text_body(empty) and "<img" not in html_body(empty)
    kinds = [b["type"] for b in slack_json(empty)["blocks"]]
    assert kinds == ["header", "section", "section", "context"]  # no details, no image


def test_pictures_are_capped_and_slack_links_are_never_cut_in_half():
    many = tuple(
        {"src": f"https://g.example.com/{i}.png", "href": "", "alt": f"p{i}"} for i in range(8)
    )
    links = tuple(
        {"href": f"https://r.example.com/{'x' * 900}/{i}", "text": f"L{i}"} for i in range(8)
    )
    message = slack_json(page(AlertContext(None, links, many)))
    assert len([b for b in message["blocks"] if b["type"] == "image"]) == MAX_PICTURES
    assert html_body(page(AlertContext(None, (), many))).count("<img") == MAX_PICTURES
    [links_block] = [
        b for b in message["blocks"] if b["type"] == "section" and "Incident" in b["text"]["text"]
    ]
    text = links_block["text"]["text"]
    assert len(text) <= 3000
    assert text.count("<") == text.count(">")  # whole links only
    assert re.fullmatch(r"(<[^<>|]+\|[^<>]+>)( \| <[^<>|]+\|[^<>]+>)*", text), text
