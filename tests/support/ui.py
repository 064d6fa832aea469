"""Helpers of the web UI's tests: log in through the real form, find the CSRF token of a
page, post a form as the page's own button would."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from oncall.web.keys import CLOCK, RUNTIME

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """Return the CSRF token in a page's first form; fails the test when there is none."""
    found = _CSRF.search(html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def set_password(client: TestClient[Any, Any], user: str, password: str = PASSWORD) -> None:
    """Give `user` a web UI password, as `python app.py set-password` does."""
    app = client.server.app
    await app[RUNTIME].accounts.set_password(user, password, "test", app[CLOCK]())


async def log_in(
    client: TestClient[Any, Any], user: str = "alice", password: str = PASSWORD
) -> str:
    """Set `user`'s password, log in through the login form, and return the CSRF token of
    the session (every later form needs it)."""
    await set_password(client, user, password)
    page = await client.get("/login")
    token = csrf_of(await page.text())
    response = await client.post(
        "/login",
        data={"_csrf": token, "user": user, "password": password, "next": "/"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    # The session is new at login: so is its token.
    return await page_csrf(client, "/")


async def page_csrf(client: TestClient[Any, Any], path: str = "/") -> str:
    """Return the CSRF token of the page at `path` (the logout form of every page has it)."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


async def post_form(client: TestClient[Any, Any], path: str, token: str, **fields: str) -> Any:
    """Post a form with the session's CSRF token as a page's button does; return the
    response without following its redirect."""
    return await client.post(path, data={"_csrf": token, **fields}, allow_redirects=False)
