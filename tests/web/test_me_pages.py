"""The /me page: who I am, my contacts and rules (read-only), the test page button, and my
calendar feed created, rotated and revoked through its forms."""

from __future__ import annotations

import html
import re
from typing import Any

from oncall.clock import system_clock
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN
from tests.support.receivers import HttpReceiver
from tests.support.roles import responders_directory, written
from tests.support.ui import log_in, page_csrf, post_form

PUBLIC_URL = "http://oncall.example.org"  # http: the test client keeps no Secure cookie
EVIL = "<script>alert(1)</script>"
_FEED_URL = re.compile(r'class="feed-url" readonly value="([^"]+)"')


def directory(push_url: str = "https://hooks.example.com/secret-path?token=abc") -> str:
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    full_name: "Alice {EVIL}"
    time_zone: America/New_York
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: webhook, name: push, url: "{push_url}"}}
      - {{type: email, to: "{EVIL}@example.com"}}
      - {{type: apprise, name: phone, url: "tgram://bot-token-123/chat-456"}}
    notification_rules:
      high: [{{contact: push, after: 0m}}, {{contact: email, after: 5m}}]
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: b@example.com}}]}}
policies:
  - {{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}
routes: [{{policy: p}}]
"""


async def test_it_shows_who_i_am_and_my_contacts_and_rules_read_only(make_client: Any) -> None:
    client = await make_client(directory=directory())
    await log_in(client)
    response = await client.get("/me")
    assert response.status == 200
    text = await response.text()
    assert "<dd>alice</dd>" in text
    assert "<dd>America/New_York</dd>" in text and "<dd>responder</dd>" in text
    assert "live in the directory file" in text
    assert "<td>push</td><td>webhook</td><td>https://hooks.example.com/…</td>" in text
    assert "<td>phone</td><td>apprise</td><td>tgram://…</td>" in text
    # Secrets in the contacts' URLs are not shown.
    assert "secret-path" not in text and "token=abc" not in text and "bot-token" not in text
    assert "push at once; email after 5m" in text
    low = text.split("Low urgency:")[1].split("</li>")[0]
    assert "push at once; email at once; phone at once" in low
    assert "the file gives no rules for this urgency" in low
    # The full name and the e-mail address are shown as text.
    assert EVIL not in text
    assert f"Alice {html.escape(EVIL)}" in text
    assert f"{html.escape(EVIL)}@example.com" in text
    # Read-only: no form posts to anything but the test page, the feed and logging out.
    actions = set(re.findall(r'<form method="post" action="([^"]+)"', text))
    assert actions == {"/me/test-page", "/me/calendar-feed", "/logout"}


async def test_the_test_page_button_shows_each_contacts_outcome(
    make_client: Any, aiohttp_server: Any, smtp_server: Any
) -> None:
    ok, failing = HttpReceiver(), HttpReceiver(default=500)
    for receiver in (ok, failing):
        server = await aiohttp_server(receiver.app())
        receiver.url = str(server.make_url("/hook"))
    sink, port = smtp_server
    contacts = (
        f'[{{type: webhook, name: push, url: "{ok.url}"}}, '
        f'{{type: webhook, name: broken, url: "{failing.url}"}}, '
        "{type: email, to: a@example.com}]"
    )
    client = await make_client(
        directory=responders_directory().replace(
            "contacts: [{type: email, to: a@example.com}]", f"contacts: {contacts}"
        ),
        clock=system_clock,
        smtp_host="127.0.0.1",
        smtp_port=str(port),
        smtp_from="oncall@example.com",
    )
    token = await log_in(client)
    before = await written(client)
    response = await post_form(client, "/me/test-page", token)
    assert response.status == 200
    text = await response.text()
    outcomes = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", item)).strip()
        for item in re.findall(r'<li class="outcome">(.*?)</li>', text, re.S)
    ]
    assert outcomes == [
        "push (webhook): sent",
        "broken (webhook): failed HTTP 500: nope",
        "email (email): sent",
    ]
    assert (len(ok.requests), len(failing.requests)) == (1, 1)
    [mail] = sink.messages
    assert b"Subject: Test page from oncall: no incident" in mail.content
    assert await written(client) == before


async def _feed_client(make_client: Any) -> Any:
    return await make_client(directory=responders_directory(), server_public_url=PUBLIC_URL)


def _feed_urls(text: str) -> list[str]:
    return [html.unescape(url) for url in _FEED_URL.findall(text)]


async def test_the_feed_is_created_rotated_and_revoked_through_the_forms(make_client: Any) -> None:
    client = await _feed_client(make_client)
    token = await log_in(client)
    page = await (await client.get("/me")).text()
    assert "Create calendar feed" in page and "Revoke" not in page

    response = await post_form(client, "/me/calendar-feed", token)
    assert response.status == 200
    text = await response.text()
    assert "shown only now" in text and "Your calendar feed was created" in text
    [first] = _feed_urls(text)
    assert first.startswith(f"{PUBLIC_URL}/feeds/alice/") and first.endswith("/primary.ics")
    feed = await client.get(first.removeprefix(PUBLIC_URL))
    assert feed.status == 200
    assert feed.headers["Content-Type"].startswith("text/calendar")

    # Shown once: the page afterwards says there is a feed, without its URL.
    page = await (await client.get("/me")).text()
    assert "You have a calendar feed" in page and "Rotate calendar feed" in page
    assert _feed_urls(page) == [] and first.split("/")[-2] not in page

    response = await post_form(client, "/me/calendar-feed", token)
    text = await response.text()
    assert "was rotated: the earlier URLs no longer work" in text
    [second] = _feed_urls(text)
    assert second != first
    assert (await client.get(first.removeprefix(PUBLIC_URL))).status == 404
    assert (await client.get(second.removeprefix(PUBLIC_URL))).status == 200

    response = await post_form(client, "/me/calendar-feed/revoke", token)
    assert (response.status, response.headers["Location"]) == (303, "/me")
    page = await (await client.get("/me")).text()
    assert "You have no calendar feed" in page and "Create calendar feed" in page
    assert (await client.get(second.removeprefix(PUBLIC_URL))).status == 404


async def test_the_forms_without_the_csrf_token_or_a_session_change_nothing(
    make_client: Any, aiohttp_server: Any
) -> None:
    receiver = HttpReceiver()
    server = await aiohttp_server(receiver.app())
    receiver.url = str(server.make_url("/hook"))
    client = await make_client(
        directory=responders_directory().replace(
            "contacts: [{type: email, to: a@example.com}]",
            f'contacts: [{{type: webhook, url: "{receiver.url}"}}]',
        ),
        server_public_url=PUBLIC_URL,
    )
    token = await log_in(client)
    created = await post_form(client, "/me/calendar-feed", token)
    [url] = _feed_urls(await created.text())
    before = await written(client)
    for path in ("/me/test-page", "/me/calendar-feed", "/me/calendar-feed/revoke"):
        response = await client.post(path, data={}, allow_redirects=False)
        assert response.status == 403, path
        assert "did not come from this site" in await response.text()
        response = await post_form(client, path, "not-the-token")
        assert response.status == 403, path
    assert await written(client) == before
    assert receiver.requests == []
    assert (await client.get(url.removeprefix(PUBLIC_URL))).status == 200

    client.session.cookie_jar.clear()
    for path in ("/me/test-page", "/me/calendar-feed", "/me/calendar-feed/revoke"):
        response = await post_form(client, path, token)
        assert response.status == 403, path
        assert "session has ended" in await response.text()
    assert await written(client) == before
    assert receiver.requests == []
    assert (await client.get("/me", allow_redirects=False)).headers["Location"] == "/login?next=/me"


async def test_another_users_page_is_their_own(make_client: Any) -> None:
    client = await make_client(directory=directory())
    await log_in(client, "bob")
    text = await (await client.get("/me")).text()
    assert "<dd>bob</dd>" in text and "b@example.com" in text
    assert "hooks.example.com" not in text
    assert await page_csrf(client, "/me")


async def test_a_forms_address_opened_again_leads_back_to_the_page(make_client: Any) -> None:
    client = await make_client(directory=directory())
    await log_in(client)
    for path in ("/me/test-page", "/me/calendar-feed"):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/me"), path
