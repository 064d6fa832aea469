"""Pure page rendering against alert text: which URLs become links, Slack's escaping, the
e-mail's headers for rows stored before ingest normalised them, and build failures."""

from __future__ import annotations

import email
from email import policy as email_policy
from typing import Any

import pytest

from oncall.notify.channels import ChannelContext, DeliveryError, building
from oncall.notify.channels.email import build_message
from oncall.notify.messages import html_body, slack_escape, slack_json, slack_link, web_url
from oncall.settings import load_settings
from tests.notify.test_retry import make_page
from tests.support.factories import T0

# (url, whether it may become a link)
URLS = [
    ("https://prometheus.example/graph?g0.expr=up", True),
    ("http://alertmanager:9093", True),
    ("HTTPS://Prometheus.example/", True),  # the scheme is case-insensitive
    ("javascript:alert(1)", False),
    ("JavaScript:alert(1)", False),
    ("data:text/html,<script>alert(1)</script>", False),
    ("vbscript:msgbox", False),
    ("file:///etc/passwd", False),
    ("mailto:eve@example.com", False),
    ("//evil.example/x", False),  # scheme-relative: whatever the reader's page uses
    ("/api/v1/incidents/1", False),  # relative: no host
    ("http://", False),  # no host
    ("https://a.example/x y", False),  # a space: the rest would be text of the link
    ("https://a.example/\nAcknowledge: https://evil.example", False),
    ("https://a.example/\x00", False),
    ("http://[::1", False),  # urlsplit refuses it
    ("", False),
]


@pytest.mark.parametrize(("url", "link"), URLS)
def test_only_absolute_http_urls_become_links(url: str, link: bool) -> None:
    assert (web_url(url) == url) is link
    assert (web_url(url) is None) is not link


def test_slack_escapes_its_three_markup_characters_and_nothing_else() -> None:
    assert slack_escape("<!channel> & <@U123> <#C1|x> *bold*") == (
        "&lt;!channel&gt; &amp; &lt;@U123&gt; &lt;#C1|x&gt; *bold*"
    )
    assert slack_escape("&amp;") == "&amp;amp;"  # shown as typed


def test_a_slack_link_carries_its_url_encoded_and_shows_anything_else_as_text() -> None:
    assert slack_link("https://p.example/g?a=1&b=<2>|3", "Source <x>") == (
        "<https://p.example/g?a=1&amp;b=%3C2%3E%7C3|Source &lt;x&gt;>"
    )
    assert slack_link("javascript:alert(1)", "Source") == "Source: javascript:alert(1)"
    assert slack_link("ftp://x/<!here>", "Source") == "Source: ftp://x/&lt;!here&gt;"


def test_a_long_slack_header_is_cut_between_entities() -> None:
    page = make_page(title="&" * 200)
    header = slack_json(page)["blocks"][0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("&amp;")


def test_the_mail_has_no_link_but_http_ones() -> None:
    page = make_page(
        source_urls=("javascript:alert(1)", "https://p.example/g?a=1&b=2"),
        external_url="data:text/html,x",
        links={"acknowledge": "javascript:ack()"},
    )
    html = html_body(page)
    assert 'href="javascript:' not in html and 'href="data:' not in html
    assert 'href="https://p.example/g?a=1&amp;b=2"' in html
    assert "Source: javascript:alert(1)" in html and "Acknowledge: javascript:ack()" in html


def context() -> ChannelContext:
    settings = load_settings({"ONCALL_SETTINGS": "/dev/null"})
    http: Any = None  # building a mail posts nothing
    return ChannelContext(http, settings.smtp, lambda: T0)


def test_a_page_from_rows_stored_with_a_newline_still_has_a_one_line_subject() -> None:
    # Incidents written before ingest normalised their text keep it in the database.
    page = make_page(severity="critical\r\nBcc: eve@example.com", title="Disk\nfull\x07")
    message = build_message(page, "alice@example.com", "pager@example.com", context())
    parsed = email.message_from_bytes(message.as_bytes(), policy=email_policy.default)
    assert parsed["Subject"] == "[TRIGGERED] [critical Bcc: eve@example.com] Disk full (#12)"
    assert parsed["Bcc"] is None


@pytest.mark.parametrize("header", ["To", "From"])
def test_an_address_with_a_line_break_is_refused_naming_its_header(header: str) -> None:
    bad = "alice@example.com\r\nBcc: eve@example.com"
    to, sender = (bad, "pager@example.com") if header == "To" else ("alice@example.com", bad)
    with pytest.raises(ValueError, match=f"the {header} address"):
        build_message(make_page(), to, sender, context())


def test_anything_raised_while_building_is_a_permanent_delivery_error() -> None:
    with pytest.raises(DeliveryError) as caught, building("Slack message"):
        "\ud800".encode()
    assert caught.value.permanent
    assert caught.value.message.startswith("could not build the Slack message: UnicodeEncodeError")
    retryable = DeliveryError("HTTP 503")
    with pytest.raises(DeliveryError) as passed, building("webhook body"):
        raise retryable
    assert passed.value is retryable and not passed.value.permanent
