"""Logging in and out of the web UI.

A wrong password counts against the client's address (with wrong API tokens) and against
the user; either over its limit refuses further tries, right or wrong, until its window
ends. An unknown user's login is refused exactly like a wrong password, as slowly.
"""

from __future__ import annotations

from aiohttp import web

from oncall.errors import OncallError, TooManyRequests
from oncall.web import sessions
from oncall.web.auth import count_failure, refuse_if_throttled
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.pages.base import (
    CSRF_REFUSED,
    described,
    error_page,
    local_path,
    read_form,
    render,
    see_other,
)
from oncall.web.throttle import Throttle

MAX_NAME = 64


async def _form(request: web.Request, status: int = 200, **context: object) -> web.Response:
    next_path = local_path(request.rel_url.query.get("next"))
    return await render(
        request, "login.html", {"next": next_path, "error": None, "user": "", **context}, status
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    if await sessions.current_user(request) is not None:
        raise see_other(local_path(request.rel_url.query.get("next")))
    return await _form(request)


def _user_throttle(request: web.Request, name: str) -> Throttle:
    """Return the throttle counting wrong passwords for `name`: a user's own, or the one of
    names that no user has (see Runtime.strangers)."""
    runtime = request.app[RUNTIME]
    return runtime.logins if name in request.app[DIRECTORY].current.users else runtime.strangers


def _refuse_throttled(request: web.Request, name: str) -> None:
    """Raise TooManyRequests when the client's address or the user `name` has had too
    many wrong tries."""
    refuse_if_throttled(request)
    wait = _user_throttle(request, name).retry_after(name, request.app[CLOCK]())
    if wait is not None:
        raise TooManyRequests(f"too many wrong passwords for this user; retry in {wait} s", wait)


async def _checked(request: web.Request, name: str, password: str) -> str | None:
    """Return what `Accounts.login` answers, a wrong password counted against the address
    and the user. The limits are checked when the try arrives and again when its turn to
    hash comes: tries sent at once, which all arrive before the first one's slow hash is
    done, get no more than tries sent one after another (at most CONCURRENT_HASHES - 1
    more, whose hashes run side by side). The count follows the hash with no await in
    between, so the next try's turn comes after it."""
    _refuse_throttled(request, name)
    accounts = request.app[RUNTIME].accounts
    changed = await accounts.login(name, password, lambda: _refuse_throttled(request, name))
    if changed is None:
        count_failure(request)
        _user_throttle(request, name).failed(name, request.app[CLOCK]())
    return changed


async def login(request: web.Request) -> web.StreamResponse:
    try:
        form = await read_form(request)
        if not await sessions.csrf_ok(request, form.get(sessions.CSRF_FIELD)):
            return await error_page(request, 403, CSRF_REFUSED)
        name = form.get("user", "").strip()[:MAX_NAME]
        password = form.get("password", "")
        changed = await _checked(request, name, password)
        # Looked up after the hash: a reload may have removed the user meanwhile.
        user = request.app[DIRECTORY].current.users.get(name)
        if changed is None or user is None:
            return await _form(request, 401, error="Wrong user name or password.", user=name)
    except OncallError as error:
        return await _form(request, error.status, error=described(error))
    await sessions.start(request, user, changed)
    raise see_other(local_path(form.get("next")))


async def logout(request: web.Request) -> web.StreamResponse:
    try:
        form = await read_form(request)
    except OncallError as error:
        return await error_page(request, error.status, described(error))
    if not await sessions.csrf_ok(request, form.get(sessions.CSRF_FIELD)):
        return await error_page(request, 403, CSRF_REFUSED)
    try:
        await sessions.end(request)
    except OncallError as error:  # the database is away: still logged in, try again
        return await error_page(request, error.status, described(error))
    raise see_other("/login")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
