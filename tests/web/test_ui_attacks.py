"""The web UI attacked, and on a bad night: guesses in parallel, forged and replayed
requests, redirects, markup and links in every value an attacker controls."""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
from collections import Counter
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
import pytest
from sqlalchemy import select
from yarl import URL

from oncall.accounts import passwords
from oncall.accounts.service import CONCURRENT_HASHES
from oncall.db.models import ended_sessions
from oncall.directory.parse import parse_directory
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.sessions import COOKIE, SESSION_LIFETIME
from oncall.web.throttle import Throttle
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.roles import roles_directory
from tests.support.ui import PASSWORD, csrf_of, log_in, post_form, set_password
from tests.web.test_forms_refused import _ids, concrete, everything, page_gets

EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
ADMIN = {"Authorization": f"Bearer {ALICE_TOKEN}"}


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


async def test_a_made_up_forwarded_for_is_still_the_same_address(client):
    token = await _login_token(client)
    limit = client.server.app[RUNTIME].throttle.limit
    for n in range(limit):  # no trusted_proxies: anybody may write X-Forwarded-For
        response = await client.post(
            "/login",
            data={"_csrf": token, "user": f"user{n}", "password": "a wrong password"},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
            allow_redirects=False,
        )
        assert response.status == 401
    assert await _try(client, token, "user", "a wrong password") == 429


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


async def test_a_request_naming_another_host_leads_back_to_the_path_only(client):
    # An absolute request target (as to a proxy): aiohttp routes its path.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    host = f"{client.server.host}:{client.server.port}"
    writer.write(
        f"GET http://evil.example/?status=all HTTP/1.1\r\nHost: {host}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    answer = (await reader.read()).decode()
    writer.close()
    assert "\r\nLocation: /login?next=/?status=all\r\n" in answer, answer


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


async def test_links_from_alert_data_leave_the_page_as_plain_links(client):
    # A Prometheus on this host, another port: the same host name, another origin.
    here = str(client.make_url("/")).rstrip("/")
    other = here.rsplit(":", 1)[0] + ":9090"
    alert = make_alert("db1")
    alert["generatorURL"] = f"{other}/graph?g0.expr=up"
    alert["annotations"]["runbook_url"] = f"{other}/runbooks/disk"
    webhook = make_webhook([alert])
    webhook["externalURL"] = f"{other.rsplit(':', 1)[0]}:9093"
    response = await client.post("/api/v1/integrations/alertmanager", json=webhook, headers=AM_AUTH)
    [incident] = (await response.json())["incidents"]
    await log_in(client, "alice")
    parser = Links()
    parser.feed(await (await client.get(f"/incidents/{incident}")).text())
    leaving = [a for a in parser.links if (a.get("href") or "").startswith(("http:", "https:"))]
    assert len(leaving) >= 3, parser.links  # the source, the runbook, Alertmanager
    # htmx boosts a link whose host name is the page's (whatever its port or scheme),
    # then refuses to fetch another origin: the click did nothing at all.
    assert [a for a in leaving if a["boost"] != "false"] == []
    # ... and the page's own links are still boosted.
    assert {a["href"]: a["boost"] for a in parser.links}["/"] == "true"


# Sessions.


def _cookie(client: Any) -> str:
    return str(client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value)


async def test_a_session_planted_before_the_login_is_replaced_by_it(client):
    await set_password(client, "alice")
    token = await _login_token(client)  # the attacker's session and token, planted
    planted = _cookie(client)
    assert await _try(client, token, "alice", PASSWORD) == 303
    assert _cookie(client) != planted
    # The planted session knows nobody, and its token opens no form of alice's.
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({COOKIE: planted})
    assert (await client.get("/", allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    assert await _try(client, await _login_token(client), "alice", PASSWORD) == 303
    assert (await post_form(client, "/logout", token)).status == 403


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


async def test_every_get_of_a_page_changes_nothing_and_carries_the_pages_headers(make_client):
    # SameSite=Lax sends the cookie with a cross-site GET (a link, an <img>): none may act.
    client = await make_client(directory=roles_directory())
    ids = await _ids(client)
    app = client.server.app
    link = app[RUNTIME].notifier.link(ids["incidents"], "acknowledge", "dana", app[CLOCK]())
    await log_in(client, "dana")
    paths = [concrete(route, ids) for route in page_gets(app)]
    paths += ["/login", "/login?next=/status", "/incidents/999999", URL(link).path]
    assert {"/", "/me/test-page", "/me/calendar-feed", "/maintenance"} <= set(paths), paths
    before = await written_by_pages(client)
    for path in paths:
        for method in ("GET", "HEAD"):
            response = await client.request(
                method, path, headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False
            )
            assert response.status in (200, 303, 404), (method, path, response.status)
            if response.content_type != "text/html":
                continue
            headers = response.headers
            policy = headers["Content-Security-Policy"]
            assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy, path
            assert headers["X-Frame-Options"] == "DENY", path
            assert headers["Cache-Control"] == "no-store", path  # feed URLs, CSRF tokens
            assert headers["Referrer-Policy"] == "no-referrer", path
    assert await written_by_pages(client) == before
    # ... and the session cookie is nothing to the API, whose tokens are its credentials.
    answer = await client.post(f"/api/v1/incidents/{ids['incidents']}/acknowledge")
    assert answer.status == 401


async def test_forms_in_other_encodings_are_refused_and_write_nothing(client):
    token = await log_in(client, "alice")
    incident = (await _ids_of_one(client))[0]
    before = await written_by_pages(client)
    multipart = aiohttp.FormData({"_csrf": token, "text": "a note"})
    multipart.add_field("file", b"x", filename="x.txt")  # multipart/form-data
    for body, kind in (
        (multipart, None),
        (f"_csrf={token}&text=a note", "text/plain"),  # an enctype no form check reads
        (json.dumps({"_csrf": token, "text": "a note"}), "application/json"),
    ):
        headers = {"Content-Type": kind} if kind else {}
        response = await client.post(
            f"/incidents/{incident}/notes", data=body, headers=headers, allow_redirects=False
        )
        assert response.status in (400, 403), (kind, response.status)
    # Method override is no thing here: GET and PUT of an action are not routes.
    for method, headers in (("GET", {"X-HTTP-Method-Override": "POST"}), ("PUT", {})):
        response = await client.request(
            method, f"/incidents/{incident}/acknowledge", headers=headers, allow_redirects=False
        )
        assert response.status == 405
    assert await written_by_pages(client) == before


async def written_by_pages(client: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row but the pages being delivered meanwhile (their rows change as the
    outbox works, in the background: a GET that acted changes the incidents too)."""
    rows = await everything(client)
    return {k: v for k, v in rows.items() if not k.startswith("notification")}


async def _ids_of_one(client: Any) -> list[int]:
    response = await client.post(
        "/api/v1/integrations/alertmanager", json=make_webhook([make_alert("db1")]), headers=AM_AUTH
    )
    return list((await response.json())["incidents"])


async def test_the_next_page_after_login_stays_on_this_site_whatever_it_looks_like(client):
    await set_password(client, "alice")
    for target in (
        "//evil.example/",
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        " //evil.example",
        "https:evil.example",
        "https:/evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/.//evil.example",
        "/\u3000/evil.example",
    ):
        for step in ("post", "get"):
            client.session.cookie_jar.clear()
            token = await _login_token(client)
            response = await client.post(
                "/login",
                data={"_csrf": token, "user": "alice", "password": PASSWORD, "next": target},
                allow_redirects=False,
            )
            if step == "get":  # logged in: the login form sends on to its next page
                response = await client.get(
                    f"/login?next={quote(target, safe='')}", allow_redirects=False
                )
            where = response.headers["Location"]
            landed = urlsplit(urljoin("https://oncall.example/login", where))
            assert landed.netloc == "oncall.example", (target, step, where)
            assert landed.scheme == "https", (target, step, where)


async def test_an_unknown_user_costs_an_argon2_verify_as_a_known_one_does(client, monkeypatch):
    await set_password(client, "alice")
    token = await _login_token(client)
    verified: list[str] = []
    hasher = passwords._hasher

    class Counted:
        def verify(self, stored: str, password: str) -> bool:
            verified.append(password)
            return hasher.verify(stored, password)

        def __getattr__(self, name: str) -> Any:
            return getattr(hasher, name)

    monkeypatch.setattr(passwords, "_hasher", Counted())
    for user in ("alice", "mallory", "bob"):  # known; unknown; known without a password
        assert await _try(client, token, user, f"wrong for {user}") == 401
    assert verified == ["wrong for alice", "wrong for mallory", "wrong for bob"]


@pytest.mark.argon2_defaults  # hashes that take their time overlap when unbounded
async def test_a_burst_of_logins_runs_at_most_the_bound_of_hashes_at_once(client, monkeypatch):
    await set_password(client, "alice")
    token = await _login_token(client)
    running, most = 0, 0
    lock = threading.Lock()
    matches = passwords.matches

    def watched(stored: str | None, password: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return matches(stored, password)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(passwords, "matches", watched)
    # 64 MiB each: 20 at once would be 1.3 GiB. Right passwords: no lockout cuts it short.
    answers = await asyncio.gather(*(_try(client, token, "alice", PASSWORD) for _ in range(20)))
    assert answers == [303] * 20
    assert 1 <= most <= CONCURRENT_HASHES


# Markup in every value an attacker controls.

# Breaks out of text, of an attribute (either quote), of an SVG's <title> and the SVG, of a
# <textarea> or <code>; template syntax (data is never a template).
MARKUP = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</title></svg></textarea></code><script>alert(4)</script>",
    "{{ 7919*7907 }}{% if true %}templateran{% endif %}",
)
HOSTILE = " ".join(MARKUP)
NOT_WEB = ("javascript:alert(5)", " JaVaScRiPt:alert(6)", "java\tscript:alert(7)")
NOT_WEB += ("data:text/html,<script>alert(8)</script>", "vbscript:msgbox(9)")
SHOWN = html.escape(MARKUP[0], quote=False)  # how the first piece reads in the page


def hostile_directory() -> str:
    """Alice (an admin) and bob whose full names are markup; an Events v2 integration."""
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
users:
  - name: alice
    full_name: {json.dumps(HOSTILE)}
    role: admin
    time_zone: Europe/Berlin
    api_token: "{ALICE_TOKEN}"
    contacts: [{{type: email, to: alice@example.com}}]
  - name: bob
    full_name: {json.dumps(MARKUP[3])}
    contacts: [{{type: email, to: bob@example.com}}]
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {{members: [alice, bob], rotation: 1d, handoff: "2026-01-01 09:00"}}
policies:
  - name: default
    levels:
      - {{notify: ["schedule:primary"], escalate_after: 5m}}
routes:
  - {{policy: default}}
"""


class Injected(HTMLParser):
    """What a page holds that none of ours has: a script but htmx, an element that loads
    or runs something, an event handler, a link or form to a scheme but http(s), an htmx
    attribute leading elsewhere, template output."""

    LINKS = ("href", "src", "action", "formaction", "xlink:href", "poster", "srcset")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._script = True
            if values.get("src") != "/static/htmx.min.js":
                self.found.append(f"<script {attrs}>")
        if tag in ("img", "iframe", "object", "embed", "base", "frame"):
            self.found.append(f"<{tag} {attrs}>")
        for name, value in attrs:
            text = (value or "").strip().lower().replace("\t", "")
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in self.LINKS and text.startswith(("javascript:", "data:", "vbscript:")):
                self.found.append(f"<{tag} {name}={value!r}>")
            leaves = not text.startswith("/") or text.startswith("//")
            if name in ("hx-get", "hx-post", "hx-put", "hx-delete", "hx-patch") and leaves:
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = False

    def handle_data(self, data: str) -> None:
        if self._script and data.strip():
            self.found.append(f"inline script {data[:40]!r}")
        # 7919*7907, evaluated: a product no page shows otherwise (unlike 7*7's 49, which
        # a latency such as "10.49 ms" contains).
        if re.search(r"\b(62615533|templateran)\b", data) and "7919*7907" not in data:
            self.found.append(f"template output {data[:60]!r}")


def injected(page: str) -> list[str]:
    parser = Injected()
    parser.feed(page)
    parser.close()
    return parser.found


async def _hostile_data(client: Any) -> int:
    """Fill every store a page shows from outside input; return the Alertmanager incident."""
    alert = make_alert("db1", alertname="Markup")
    alert["labels"].update({"team": HOSTILE, "link": NOT_WEB[0]})
    alert["annotations"] = {"summary": HOSTILE, **{f"url{n}": u for n, u in enumerate(NOT_WEB)}}
    alert["generatorURL"] = NOT_WEB[0]
    webhook = make_webhook([alert], alertname="Markup")
    webhook["externalURL"] = NOT_WEB[3]
    webhook["commonAnnotations"] = {"summary": HOSTILE}
    response = await client.post("/api/v1/integrations/alertmanager", json=webhook, headers=AM_AUTH)
    assert response.status == 200, await response.text()
    [incident] = (await response.json())["incidents"]
    event = {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "markup",
        "payload": {
            "summary": HOSTILE,
            "source": HOSTILE,
            "severity": "critical",
            "component": HOSTILE,
            "custom_details": {"html": HOSTILE, "url": NOT_WEB[1]},
        },
        "links": [{"href": url, "text": HOSTILE} for url in NOT_WEB],
        "images": [{"src": url, "href": url, "alt": HOSTILE} for url in NOT_WEB],
        "client": HOSTILE,
        "client_url": NOT_WEB[0],
    }
    assert (await client.post("/v2/enqueue", json=event)).status == 202
    return int(incident)


async def test_markup_and_links_from_outside_are_shown_as_text_on_every_page(make_client):
    client = await make_client(directory=hostile_directory())
    incident = await _hostile_data(client)
    token = await log_in(client, "alice")
    for text in (HOSTILE, *NOT_WEB):
        assert (await post_form(client, f"/incidents/{incident}/notes", token, text=text)).status
    added = await post_form(
        client,
        "/schedules/primary/overrides",
        token,
        user="bob",
        start="2026-01-05T14:00",
        end="2026-01-05T16:00",
    )
    assert added.status == 303, await added.text()
    window = await post_form(
        client,
        "/maintenance",
        token,
        name=HOSTILE[:190],
        start="2026-01-06T14:00",
        end="2026-01-06T16:00",
        match=f'team="{MARKUP[0]}"\ninstance=~"</code><svg onload=alert(3)>"',
    )
    assert window.status == 303, await window.text()
    shown = {  # each page, and whether the markup is on it (as text)
        "/": True,
        "/?status=all": True,
        f"/?q={quote(HOSTILE)}": True,
        f"/?q={quote(MARKUP[1])}&status=all": True,
        f"/incidents/{incident}": True,
        f"/incidents/{incident + 1}": True,
        "/oncall": True,
        "/schedules/primary": True,
        "/me": True,
        "/maintenance": True,
        "/simulate": False,
        f"/simulate?sample={quote(MARKUP[1])}": False,  # the picker says there is none
        "/status": False,
        f"/?status={quote(MARKUP[1])}": False,  # an error page naming the bad value
        f"/login?next={quote(MARKUP[1])}": False,
    }
    for path, with_markup in shown.items():
        response = await client.get(path)
        page = await response.text()
        assert injected(page) == [], path
        assert not with_markup or SHOWN in page, path
    # Error pages that repeat what was typed: a bad duration, a bad time, a bad matcher.
    for path, fields in (
        (f"/incidents/{incident}/snooze", {"duration": MARKUP[1]}),
        ("/schedules/primary/overrides", {"user": "bob", "start": MARKUP[1], "end": "x"}),
        ("/maintenance", {"name": "w", "start": MARKUP[1], "end": MARKUP[0]}),
        (
            "/maintenance",
            {"name": "w", "start": "2026-01-06T14:00", "end": "2026-01-06T15:00", "match": HOSTILE},
        ),
        ("/simulate", {"payload": HOSTILE, "source": MARKUP[1], "at": MARKUP[0]}),
        ("/simulate", {"payload": "{}", "at": "2026-01-05T13:00", "hours": MARKUP[1]}),
        ("/simulate", {"payload": "{}", "at": "2026-01-05T13:00", "acknowledge_after": HOSTILE}),
    ):
        response = await post_form(client, path, token, **fields)
        assert response.status == 400, path
        assert injected(await response.text()) == [], (path, fields)
    # A simulation of an alert full of markup: its page shows alice's name, as text.
    alert = make_alert("db1", alertname="Markup")
    alert["labels"]["team"] = MARKUP[3]  # a label's value is at most 128 characters
    response = await post_form(
        client,
        "/simulate",
        token,
        payload=json.dumps(make_webhook([alert], alertname="Markup")),
        source="alertmanager",
        at="2026-01-05T13:00",
        hours="2",
    )
    assert response.status == 200, await response.text()
    page = await response.text()
    assert injected(page) == [] and SHOWN in page


def test_the_markup_check_finds_each_kind_of_injection():
    for page in (
        "<p><script>alert(1)</script></p>",
        '<p><img src=x onerror="alert(2)"></p>',
        "<svg onload=alert(3)></svg>",
        '<a href=" JavaScript:alert(4)">x</a>',
        '<a href="data:text/html,x">x</a>',
        '<section hx-get="//evil.example/x"></section>',
        "<p>62615533 templateran</p>",
        "<p>templateran</p>",
    ):
        assert injected(page), page
    assert (
        injected('<script src="/static/htmx.min.js"></script><p>{{ 7919*7907 }} templateran</p>')
        == []
    )
    assert injected("<p>Answering (10.49 ms); 49 incidents; it ran</p>") == []
