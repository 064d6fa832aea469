"""Signed acknowledge, snooze and resolve links from pages: GET confirms, POST acts; in a
browser logged in to the web UI, the action then leads to the incident's page.

GET never changes anything, so chat link previews and mail scanners that fetch every URL
cannot acknowledge; the button on the page POSTs back to the same URL.
"""

from __future__ import annotations

import html
from typing import Any

from aiohttp import web

from oncall.clock import isoformat
from oncall.errors import Conflict, NotFound
from oncall.notify.links import SNOOZE, InvalidLink, LinkClaim, label, verify
from oncall.web import sessions
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    # The pages' own stylesheet, nothing inline: no markup could ever style or script here.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'"
    ),
}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        "</title><meta name='viewport' content='width=device-width'>"
        "<link rel='stylesheet' href='/static/app.css'></head>"
        f"<body><main class='narrow'><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(text=document, status=status, content_type="text/html", headers=HEADERS)


def _claim(request: web.Request) -> LinkClaim:
    claim = verify(
        request.app[RUNTIME].notifier.link_key, request.match_info["token"], request.app[CLOCK]()
    )
    if claim.user not in request.app[DIRECTORY].current.users:
        raise InvalidLink("this link's user no longer exists")
    return claim


async def confirm(request: web.Request) -> web.Response:
    try:
        claim = _claim(request)
        incident = await request.app[RUNTIME].incidents.get(claim.incident_id)
    except InvalidLink as error:
        return _page("Link refused", f"<p>{html.escape(str(error))}.</p>", 403)
    except NotFound:
        return _page("Not found", "<p>This incident does not exist.</p>", 404)
    verb = label(claim.action)
    return _page(
        f"{verb} incident #{incident.id}?",
        (
            f"<p><b>{html.escape(incident.title)}</b> ({html.escape(incident.severity)}) is "
            f"<b>{html.escape(incident.status)}</b>.</p>"
            f"<p>You are acting as <b>{html.escape(claim.user)}</b>.</p>"
            f"<form method='post'><button type='submit' class='primary'>{verb}</button></form>"
        ),
    )


async def act(request: web.Request) -> web.Response:
    try:
        claim = _claim(request)
    except InvalidLink as error:
        return _page("Link refused", f"<p>{html.escape(str(error))}.</p>", 403)
    incidents, now = request.app[RUNTIME].incidents, request.app[CLOCK]()
    try:
        if claim.action == "acknowledge":
            result = await incidents.acknowledge(claim.incident_id, claim.user, now)
        elif claim.action == "snooze":
            result = await incidents.snooze(claim.incident_id, claim.user, SNOOZE, now)
        else:
            result = await incidents.resolve(claim.incident_id, claim.user, now)
    except NotFound:
        return _page("Not found", "<p>This incident does not exist.</p>", 404)
    except Conflict:
        return _page(
            "Already resolved",
            f"<p>This incident is resolved; there is nothing to {html.escape(claim.action)}.</p>",
            409,
        )
    row = result.row
    if await sessions.current_user(request) is not None:
        # Opened in a browser logged in to the UI: on to the incident's page.
        raise web.HTTPSeeOther(f"/incidents/{row.id}", headers={"Cache-Control": "no-store"})
    done = "done" if result.changed else "already done"
    return _page(
        f"Incident #{row.id} is {row.status}",
        (
            f"<p><b>{html.escape(row.title)}</b>: {html.escape(label(claim.action))} {done} "
            f"as {html.escape(claim.user)}.</p>{_until(row)}"
        ),
    )


def _until(row: Any) -> str:
    """Return a paragraph saying when a snoozed incident is triggered again (else "")."""
    until = isoformat(row.snoozed_until)
    return "" if until is None else f"<p>Snoozed until {html.escape(until)}.</p>"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/a/{token}", confirm)
    app.router.add_post("/a/{token}", act)
