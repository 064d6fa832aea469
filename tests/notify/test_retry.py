"""Pure delivery rules: outcome classification, Retry-After, signed links, page content."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest

from oncall.notify import links
from oncall.notify.messages import Page, slack_json, subject, text_body, webhook_json
from oncall.notify.retry import (
    DELIVERED,
    NOTIFICATION_ATTEMPTS,
    NOTIFICATION_BACKOFF,
    PERMANENT,
    RETRY,
    backoff,
    classify_http,
    parse_retry_after,
)
from tests.support.factories import T0

# (status, outcome) — None is "no response": timeout, refused, reset
OUTCOMES = [
    (200, DELIVERED),
    (202, DELIVERED),
    (204, DELIVERED),
    (400, PERMANENT),
    (401, PERMANENT),
    (403, PERMANENT),
    (404, PERMANENT),
    (410, PERMANENT),
    (301, PERMANENT),  # redirects are not followed: the URL is wrong
    (408, RETRY),  # request timeout
    (429, RETRY),  # rate limited
    (500, RETRY),
    (502, RETRY),
    (503, RETRY),
    (504, RETRY),
    (None, RETRY),  # timeout or connection refused
]


@pytest.mark.parametrize(("status", "outcome"), OUTCOMES)
def test_http_outcomes_are_classified(status, outcome):
    assert classify_http(status) == outcome


def test_notification_retries_follow_the_seed_rule():
    assert NOTIFICATION_ATTEMPTS == 5
    waits = [backoff(n, NOTIFICATION_BACKOFF) for n in range(1, NOTIFICATION_ATTEMPTS)]
    assert waits == [timedelta(seconds=s) for s in (2, 4, 8, 16)]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", timedelta(seconds=7)),
        ("Mon, 05 Jan 2026 12:00:30 GMT", timedelta(seconds=30)),  # an HTTP date
        ("99999", timedelta(hours=1)),  # capped
        ("Mon, 05 Jan 2026 11:00:00 GMT", timedelta(0)),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(header, expected):
    assert parse_retry_after(header, T0) == expected


KEY = b"k" * 32


def test_a_signed_link_verifies_and_says_what_it_allows():
    token = links.sign(KEY, 12, "acknowledge", "jo.doe", T0 + timedelta(hours=1))
    claim = links.verify(KEY, token, T0)
    assert (claim.incident_id, claim.action, claim.user) == (12, "acknowledge", "jo.doe")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the MAC changed
        lambda t: "X" + t[1:],  # the payload changed
        lambda t: t.replace(".", ""),  # no separator
        lambda t: t + ".x",  # an extra part
    ],
)
def test_a_tampered_link_is_refused(mutate):
    token = links.sign(KEY, 12, "resolve", "alice", T0 + timedelta(hours=1))
    with pytest.raises(links.InvalidLink):
        links.verify(KEY, mutate(token), T0)


def test_an_expired_link_or_another_key_is_refused():
    token = links.sign(KEY, 12, "resolve", "alice", T0)
    with pytest.raises(links.InvalidLink, match="expired"):
        links.verify(KEY, token, T0)
    with pytest.raises(links.InvalidLink, match="not valid"):
        links.verify(b"z" * 32, token, T0 - timedelta(minutes=1))


def test_a_link_mac_is_hmac_sha256_of_the_tagged_payload_for_each_key():
    payload = b"12:resolve:alice:1790000000"
    for key in (KEY, b"z" * 32, KEY):  # the keyed template is reused, never changed
        expected = hmac.new(key, b"oncall-link-v1|" + payload, hashlib.sha256).digest()
        assert links._mac(key, payload) == expected


def make_page(**changes) -> Page:
    values = dict(
        delivery_id=5,
        event="incident.triggered",
        incident_id=12,
        status="triggered",
        title="DiskFull",
        severity="critical",
        labels={"alertname": "DiskFull", "instance": "db1"},
        annotations={"summary": "Disk full on db1", "description": "5% left"},
        level=2,
        repeat=1,
        user="alice",
        alert_count=3,
        incident_url="https://o/api/v1/incidents/12",
        external_url="http://am:9093",
        source_urls=("http://prom/graph",),
        links={"acknowledge": "https://o/a/x", "resolve": "https://o/a/y"},
    )
    values.update(changes)
    return Page(**values)


def test_every_page_carries_what_the_person_paged_needs():
    page = make_page()
    text = text_body(page)
    for needed in (
        "[TRIGGERED] [critical] DiskFull (#12)",
        "Disk full on db1",
        "5% left",
        "instance=db1",
        "https://o/api/v1/incidents/12",
        "http://prom/graph",
        "http://am:9093",
        "Acknowledge: https://o/a/x",
        "Resolve: https://o/a/y",
        "Escalation level 2, pass 2",
    ):
        assert needed in text, needed
    body = webhook_json(page)
    assert (body["event"], body["level"], body["repeat"]) == ("incident.triggered", 2, 1)
    assert body["incident"]["annotations"]["description"] == "5% left"


def test_a_resolved_message_says_so_and_offers_no_actions():
    page = make_page(event="incident.resolved", status="resolved", links={})
    assert subject(page) == "[RESOLVED] [critical] DiskFull (#12)"
    assert "actions" not in [b["type"] for b in slack_json(page)["blocks"]]


def test_html_in_alert_text_is_escaped_in_the_mail():
    from oncall.notify.messages import html_body

    page = make_page(title="<script>x</script>")
    assert "<script>" not in html_body(page)
