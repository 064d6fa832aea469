"""The web UI attacked, and on a bad night: guesses in parallel, forged and replayed
requests, redirects, markup and links in every value an attacker controls."""

from __future__ import annotations

import asyncio
import html
import re
from collections import Counter
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import select
from yarl import URL

from oncall.accounts.service import CONCURRENT_HASHES
from oncall.db.models import ended_sessions
from oncall.directory.parse import parse_directory
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.sessions import COOKIE, SESSION_LIFETIME
from oncall.web.throttle import Throttle
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    DIRECTORY_YAML,
    make_alert,
    make_webhook,
)
from tests.support.ui import PASSWORD, csrf_of, log_in, post_form, set_password

EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
ADMIN = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def events_directory() -> str:
    """The tests' directory with an Events v2 integration."""
    return DIRECTORY_YAML.replace(
        "integrations:\n",
        f'integrations:\n  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}\n',
    )


async def _login_token(client: Any) -> str:
    return csrf_of(await (await client.get("/login")).text())


async def _try(client: Any, token: str, user: str, password: str) -> int:
    response = await client.post(
        "/login",
        data={"_csrf": token, "user": user, "password": password},
        allow_redirects=False,
    )
    return response.status


# Logins.


async def test_parallel_guesses_for_one_user_get_no_more_tries_than_one_after_another(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    limit = client.server.app[RUNTIME].logins.limit
    # Sent at once, as 64 connections from one address (or a botnet) would: all arrive
    # before the slow hash of the first is done.
    guesses = [_try(client, token, "alice", f"guess number {n:03d}") for n in range(limit * 4)]
    answers = Counter(await asyncio.gather(*guesses))
    # Only the hashes that run side by side with the last counted one add to the limit.
    assert limit <= answers[401] < limit + CONCURRENT_HASHES, answers
    assert answers[401] + answers[429] == limit * 4, answers
    assert await _try(client, token, "alice", PASSWORD) == 429


async def test_parallel_guesses_from_one_address_get_no_more_tries_than_its_limit(client):
    token = await _login_token(client)
    limit = client.server.app[RUNTIME].throttle.limit
    guesses = [_try(client, token, f"user{n}", "a wrong password") for n in range(limit * 3)]
    answers = Counter(await asyncio.gather(*guesses))
    assert limit <= answers[401] < limit + CONCURRENT_HASHES, answers
    assert answers[401] + answers[429] == limit * 3, answers


async def test_a_right_password_is_not_counted_as_a_guess(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    limit = client.server.app[RUNTIME].logins.limit
    for _ in range(limit * 2):  # alice logs in on her phone, her laptop, ... all day
        assert await _try(client, token, "alice", PASSWORD) == 303
        token = await _login_token(client)
    assert await _try(client, token, "alice", "one wrong password") == 401


async def test_failures_for_names_nobody_has_never_end_a_users_lockout(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    runtime = client.server.app[RUNTIME]
    for throttle in vars(runtime).values():
        if isinstance(throttle, Throttle):
            throttle.max_addresses = 3  # as if MAX_ADDRESSES names had failed since
    for n in range(runtime.logins.limit):
        assert await _try(client, token, "alice", f"guess number {n}") == 401
    # Failures for made-up names (free to make up, from as many addresses as a botnet
    # has) would evict alice's lockout from a table bounded by its size.
    for n in range(4):
        assert await _try(client, token, f"nobody{n}", "a wrong password") == 401
    assert await _try(client, token, "alice", PASSWORD) == 429


async def test_a_user_removed_by_a_reload_while_their_password_is_checked_is_not_let_in(
    client, directory_file
):
    await set_password(client, "alice")
    token = await _login_token(client)
    app = client.server.app
    accounts = app[RUNTIME].accounts
    check = accounts.login

    async def then_reload(user: str, password: str, *args: Any) -> str | None:
        answer = await check(user, password, *args)
        # SIGHUP's reload swaps the directory in while the hash runs (tens of ms).
        text = directory_file.read_text().replace("alice", "alicia")
        app[DIRECTORY].current = parse_directory(text, {}, str(directory_file))
        return answer

    accounts.login = then_reload  # type: ignore[method-assign]
    response = await client.post(
        "/login",
        data={"_csrf": token, "user": "alice", "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 401, await response.text()
    assert "Wrong user name or password" in await response.text()
    assert (await client.get("/", allow_redirects=False)).status == 303


# Where a login leads.


def _next_of(login_page: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', login_page)
    assert found, "the login form has no next field"
    return html.unescape(found.group(1))


async def test_a_bookmarked_list_is_shown_whole_after_logging_in(client):
    await set_password(client, "alice")
    bookmark = "/?status=resolved&q=disk%20full%20%23%26"
    page = await client.get(bookmark)  # followed to the login form
    assert page.url.path == "/login"
    token = csrf_of(await page.text())
    target = _next_of(await page.text())
    response = await client.post(
        "/login",
        data={"_csrf": token, "user": "alice", "password": PASSWORD, "next": target},
        allow_redirects=False,
    )
    assert response.headers["Location"] == bookmark


async def test_a_button_tapped_after_the_session_ended_leads_back_to_its_page(client):
    await set_password(client, "alice")
    # htmx boosts every form: a POST, answered as htmx is told to go elsewhere.
    response = await client.post(
        "/incidents/7/acknowledge",
        data={"_csrf": "from an ended session"},
        headers={"HX-Request": "true", "HX-Current-URL": str(client.make_url("/incidents/7"))},
        allow_redirects=False,
    )
    assert response.status == 204
    login = await client.get(response.headers["HX-Redirect"])
    # Not the action's own address: a GET of it after the login is a 405.
    assert _next_of(await login.text()) == "/incidents/7"


# Links from alert data.


VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr", "col", "area"})


class Links(HTMLParser):
    """Each link's attributes, and `boost`: the hx-boost it inherits (htmx reads the
    nearest one)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self._open: list[tuple[str, str | None]] = []

    def _boost(self) -> str | None:
        return next((b for _, b in reversed(self._open) if b is not None), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.links.append({**values, "boost": values.get("hx-boost") or self._boost()})
        if tag not in VOID:
            self._open.append((tag, values.get("hx-boost")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break


async def _event(client: Any, **changes: Any) -> int:
    body = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "links",
        "payload": {"summary": "Links", "source": "db1", "severity": "critical"},
        **changes,
    }
    response = await client.post("/v2/enqueue", json=body)
    assert response.status == 202, await response.text()
    found = await client.get("/api/v1/incidents", headers=ADMIN)
    return int((await found.json())["incidents"][0]["id"])


async def test_links_from_alert_data_leave_the_page_as_plain_links(make_client):
    client = await make_client(directory=events_directory())
    # A Prometheus on this host, another port: the same host name, another origin.
    here = str(client.make_url("/")).rstrip("/")
    other = here.rsplit(":", 1)[0] + ":9090"
    incident = await _event(
        client,
        client_url=f"{other}/alerts",
        links=[{"href": f"{other}/graph?g0.expr=up", "text": "Graph"}],
        images=[{"src": f"{other}/chart.png", "href": f"{other}/chart", "alt": "Chart"}],
        payload={
            "summary": "Links",
            "source": "db1",
            "severity": "critical",
            "custom_details": {"runbook": "https://runbooks.example.com/db"},
        },
    )
    await log_in(client, "alice")
    parser = Links()
    parser.feed(await (await client.get(f"/incidents/{incident}")).text())
    leaving = [a for a in parser.links if (a.get("href") or "").startswith(("http:", "https:"))]
    assert len(leaving) >= 4, parser.links
    # htmx boosts a link whose host name is the page's (whatever its port or scheme),
    # then refuses to fetch another origin: the click did nothing at all.
    assert [a for a in leaving if a["boost"] != "false"] == []
    # ... and the page's own links are still boosted.
    assert {a["href"]: a["boost"] for a in parser.links}["/"] == "true"


# Sessions.


def _cookie(client: Any) -> str:
    return str(client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value)


async def test_a_cookie_copied_before_logging_out_is_no_session_after_it(client):
    response = await client.post(
        "/api/v1/integrations/alertmanager", json=make_webhook([make_alert("db1")]), headers=AM_AUTH
    )
    [incident] = (await response.json())["incidents"]
    token = await log_in(client, "alice")
    # Copied from a shared computer's profile, a backup, a proxy's log ...
    copied = _cookie(client)
    assert (await post_form(client, "/logout", token)).status == 303
    client.session.cookie_jar.update_cookies({COOKIE: copied})
    assert (await client.get("/", allow_redirects=False)).status == 303
    refused = await post_form(client, f"/incidents/{incident}/acknowledge", token)
    assert refused.status == 403
    answer = await client.get(f"/api/v1/incidents/{incident}", headers=ADMIN)
    assert (await answer.json())["status"] == "triggered"


async def test_logging_out_ends_that_session_only(client):
    await log_in(client, "alice")
    phone = _cookie(client)
    client.session.cookie_jar.clear()  # another browser
    assert await _try(client, await _login_token(client), "alice", PASSWORD) == 303
    laptop_token = csrf_of(await (await client.get("/")).text())
    assert (await post_form(client, "/logout", laptop_token)).status == 303
    client.session.cookie_jar.update_cookies({COOKIE: phone})
    assert (await client.get("/", allow_redirects=False)).status == 200


async def test_ended_sessions_are_forgotten_once_their_cookies_have_expired(client, clock):
    def ended(conn: Any) -> list[str]:
        return list(conn.execute(select(ended_sessions.c.user_name)).scalars())

    db = client.server.app[RUNTIME].db
    assert (await post_form(client, "/logout", await log_in(client, "alice"))).status == 303
    assert await db.run(ended) == ["alice"]
    clock.advance(SESSION_LIFETIME + timedelta(minutes=1))
    assert (await post_form(client, "/logout", await log_in(client, "bob"))).status == 303
    assert await db.run(ended) == ["bob"]


# Headers.


async def test_a_signed_links_pages_allow_no_inline_style_or_script(client):
    response = await client.post(
        "/api/v1/integrations/alertmanager", json=make_webhook([make_alert("db1")]), headers=AM_AUTH
    )
    [incident] = (await response.json())["incidents"]
    app = client.server.app
    path = URL(app[RUNTIME].notifier.link(incident, "acknowledge", "alice", app[CLOCK]())).path
    for answer in (
        await client.get(path),  # the confirmation
        await client.post(path),  # done
        await client.get("/a/not-a-signed-link"),  # refused
    ):
        policy = answer.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "style-src 'self'" in policy, policy
        assert " style=" not in await answer.text()
        assert "/static/app.css" in await answer.text()
