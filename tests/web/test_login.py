"""Logging in to the web UI: passwords, sessions, CSRF, throttling, logout."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oncall.web.keys import RUNTIME
from oncall.web.sessions import COOKIE
from tests.support.ui import PASSWORD, csrf_of, log_in, page_csrf, post_form, set_password


async def _login_token(client):
    return csrf_of(await (await client.get("/login")).text())


async def test_a_page_sends_a_visitor_who_is_not_logged_in_to_the_login_page(client):
    response = await client.get("/?status=resolved", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/?status=resolved"


async def test_it_logs_in_with_the_right_password_and_sets_a_safe_cookie(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    response = await post_form(
        client, "/login", token, user="alice", password=PASSWORD, next="/incidents/7"
    )
    assert response.status == 303
    assert response.headers["Location"] == "/incidents/7"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # public_url is http here
    page = await client.get("/")
    assert page.status == 200
    assert "Log out" in await page.text()


async def test_the_session_cookie_is_secure_when_the_service_is_reached_over_https(make_client):
    client = await make_client(server_public_url="https://oncall.example.com")
    await set_password(client, "alice")
    token = await _login_token(client)
    response = await post_form(client, "/login", token, user="alice", password=PASSWORD)
    assert response.cookies[COOKIE]["secure"] is True


async def test_a_wrong_password_is_refused_and_logs_nobody_in(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    response = await post_form(client, "/login", token, user="alice", password="wrong" * 4)
    assert response.status == 401
    assert "Wrong user name or password" in await response.text()
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_an_unknown_user_and_a_user_without_a_password_are_refused_alike(client):
    token = await _login_token(client)
    for user in ("mallory", "bob"):
        response = await post_form(client, "/login", token, user=user, password=PASSWORD)
        assert response.status == 401
        assert "Wrong user name or password" in await response.text()


async def test_a_login_without_the_csrf_token_is_refused(client):
    await set_password(client, "alice")
    await client.get("/login")
    response = await client.post(
        "/login", data={"user": "alice", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_a_login_from_another_site_is_refused(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    response = await client.post(
        "/login",
        data={"_csrf": token, "user": "alice", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403


async def test_wrong_passwords_for_one_user_lock_that_user_out_for_a_while(client, clock):
    await set_password(client, "alice")
    token = await _login_token(client)
    limit = client.server.app[RUNTIME].logins.limit
    for _ in range(limit):
        assert (
            await post_form(client, "/login", token, user="alice", password="x" * 12)
        ).status == 401
    # Even the right password is refused meanwhile: the guesser learns nothing.
    refused = await post_form(client, "/login", token, user="alice", password=PASSWORD)
    assert refused.status == 429
    clock.advance(client.server.app[RUNTIME].logins.window + timedelta(seconds=1))
    assert (await post_form(client, "/login", token, user="alice", password=PASSWORD)).status == 303


async def test_wrong_passwords_count_against_the_address_too(client):
    await set_password(client, "alice")
    token = await _login_token(client)
    limit = client.server.app[RUNTIME].throttle.limit
    for n in range(limit):  # a different user each time: only the address adds up
        await post_form(client, "/login", token, user=f"user{n}", password="x" * 12)
    refused = await post_form(client, "/login", token, user="alice", password=PASSWORD)
    assert refused.status == 429


async def test_the_next_page_after_login_is_never_another_site(client):
    await set_password(client, "alice")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        token = await _login_token(client)
        response = await post_form(
            client, "/login", token, user="alice", password=PASSWORD, next=target
        )
        assert response.headers["Location"] == "/"
        await post_form(client, "/logout", await page_csrf(client))


async def test_logout_ends_the_session(client):
    token = await log_in(client)
    response = await post_form(client, "/logout", token)
    assert response.status == 303
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_logout_needs_the_csrf_token(client):
    await log_in(client)
    response = await client.post("/logout", allow_redirects=False)
    assert response.status == 403
    assert (await client.get("/", allow_redirects=False)).status == 200


async def test_a_new_password_ends_the_sessions_begun_before_it(client):
    await log_in(client)
    assert (await client.get("/", allow_redirects=False)).status == 200
    await set_password(client, "alice", "another long password")
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_a_forged_cookie_is_no_session(client):
    client.session.cookie_jar.update_cookies({COOKIE: "gAAAAAforged"})
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_api_tokens_keep_working_for_the_api_and_open_no_page(client):
    from tests.support.factories import ALICE_TOKEN

    auth = {"Authorization": f"Bearer {ALICE_TOKEN}"}
    assert (await client.get("/api/v1/incidents", headers=auth)).status == 200
    assert (await client.get("/", headers=auth, allow_redirects=False)).status == 303


async def test_pages_allow_only_the_services_own_scripts_and_styles(client):
    response = await client.get("/login")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_pages_script_and_stylesheet_are_served_by_the_service_itself(client):
    page = await (await client.get("/login")).text()
    for path, kind in (("/static/htmx.min.js", "javascript"), ("/static/app.css", "text/css")):
        assert f'"{path}"' in page
        response = await client.get(path)
        assert response.status == 200
        assert kind in response.headers["Content-Type"]


async def test_a_pages_own_refresh_after_the_session_ended_sends_the_whole_page_to_login(client):
    response = await client.get(
        "/?status=all", headers={"HX-Request": "true"}, allow_redirects=False
    )
    assert response.status == 204
    assert response.headers["HX-Redirect"] == "/login?next=/?status=all"


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        # Chromium's form post from a page with Referrer-Policy no-referrer (ours)
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, True),
        # a sandboxed frame or a data: URL on another site
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, False),
        # null, and nothing else to say where it came from
        ({"Origin": "null"}, False),
        # another site, whatever Sec-Fetch-Site claims
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, False),
        # a browser too old to send either: the token decides
        ({}, True),
    ],
)
async def test_where_a_login_comes_from_is_judged_by_origin_and_sec_fetch_site(
    client, headers, accepted
):
    await set_password(client, "alice")
    token = await _login_token(client)
    response = await client.post(
        "/login",
        data={"_csrf": token, "user": "alice", "password": PASSWORD},
        headers=headers,
        allow_redirects=False,
    )
    assert response.status == (303 if accepted else 403)


async def test_a_forged_cookie_writes_no_log_line(client, caplog):
    client.session.cookie_jar.update_cookies({COOKIE: "gAAAAAforged"})
    with caplog.at_level("INFO"):
        assert (await client.get("/", allow_redirects=False)).status == 303
    assert not [r for r in caplog.records if r.name.startswith("aiohttp_session")]
