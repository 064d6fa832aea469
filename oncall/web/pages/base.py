"""What every page shares: rendering with the layout's context, the login and CSRF checks
around each handler, form bodies, times in the viewer's time zone, and error pages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from oncall.directory.model import User
from oncall.errors import InvalidInput, OncallError
from oncall.web import sessions
from oncall.web.bodies import SMALL_BODY, read_body

log = logging.getLogger(__name__)
# Only this service's own scripts and styles; SVG pictures are inline markup (no styles),
# htmx talks to this origin only, and no other site may frame a page with buttons.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"}
MAX_FORM_FIELDS = 50
Handler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]
FORM: web.RequestKey[dict[str, str]] = web.RequestKey("oncall.form")
CSRF_REFUSED = (
    "This form has expired or did not come from this site: reload the page and try again."
)


def setup(app: web.Application) -> None:
    """Add the template environment (autoescaped) and its filters to `app`."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("oncall.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local_time


def local_time(value: datetime | None, zone: str, style: str = "full") -> str:
    """Return `value` in the time zone `zone` as `2026-12-01 19:30 CET` (`style` "time":
    `19:30`, "day": `Tue 1 Dec`), or "" for None."""
    if value is None:
        return ""
    shown = value.astimezone(ZoneInfo(zone))
    if style == "time":
        return shown.strftime("%H:%M")
    if style == "day":
        return f"{shown:%a} {shown.day} {shown:%b}"
    return shown.strftime("%Y-%m-%d %H:%M %Z")


async def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    """Return `template` rendered with `context` and what the layout shows (the user, the
    CSRF token, the page's path), with the pages' security headers."""
    user = await sessions.current_user(request)
    full = {
        "me": user,
        "zone": user.time_zone if user else "UTC",
        "csrf": await sessions.csrf_token(request),
        "csrf_field": sessions.CSRF_FIELD,
        "path": request.path,
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    response.headers.update(PAGE_HEADERS)
    return response


async def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """Return the error page saying `message` with `status`."""
    return await render(request, "error.html", {"status": status, "message": message}, status)


async def read_form(request: web.Request) -> dict[str, str]:
    """Return a url-encoded form body's fields (the last value of a repeated one); raises
    InvalidInput, PayloadTooLarge or BodyTimeout. No body is an empty form."""
    if not request.body_exists:
        return {}
    kind = request.content_type
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput("expected a form (application/x-www-form-urlencoded)", "$")
    raw = await read_body(request, SMALL_BODY)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("not a form body this page sends", "$") from None
    return dict(pairs)


def described(error: OncallError) -> str:
    """Return an error's message for a page, naming its field when it has one."""
    return f"{error.message} ({error.field})" if error.field else error.message


def local_path(target: str | None, default: str = "/") -> str:
    """Return `target` when it is a path on this site (after a login), else `default`: never
    another site (`//evil`, `https://...`, `/\\evil`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 0x20 for c in target):
        return default
    return target


def see_other(location: str) -> web.HTTPSeeOther:
    """Return the redirect after a form (POST, then GET: a reload never posts again)."""
    return web.HTTPSeeOther(location, headers={"Cache-Control": "no-store"})


def _back_to(request: web.Request) -> str:
    """Return the path (and query, as sent) of the page to show after logging in: the
    page asked for, or for a form posted with htmx the page it was on (its action's own
    address only answers POST)."""
    if request.method in ("GET", "HEAD"):
        return request.rel_url.raw_path_qs
    try:
        parts = urlsplit(request.headers.get("HX-Current-URL", ""))
    except ValueError:
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "") or "/"


def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a page's handler: a visitor who is not logged in is sent to the login page (or
    refused, for a POST); every other method than GET and HEAD needs the session's CSRF
    token; errors the service raises on purpose become error pages with their status."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            user = await sessions.current_user(request)
            if user is None:
                login = f"/login?next={quote(_back_to(request), safe='/?=')}"
                if request.headers.get("HX-Request") == "true":
                    # A page's own refresh (htmx) after the session ended: the whole page
                    # goes to the login form, not just the part being refreshed.
                    return web.Response(status=204, headers={"HX-Redirect": login})
                if request.method in ("GET", "HEAD"):
                    raise see_other(login)
                return await error_page(request, 403, "Your session has ended: log in again.")
            if request.method not in ("GET", "HEAD"):
                form = await read_form(request)
                request[FORM] = form
                if not await sessions.csrf_ok(request, form.get(sessions.CSRF_FIELD)):
                    return await error_page(request, 403, CSRF_REFUSED)
            return await handler(request, user)
        except OncallError as error:
            return await error_page(request, error.status, described(error))

    return wrapped


def form_of(request: web.Request) -> dict[str, str]:
    """Return the form fields `page` read from a POST (empty for a GET)."""
    return dict(request.get(FORM, {}))
