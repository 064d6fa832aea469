"""The /me page: who I am, my contacts and notification rules (read-only: they live in the
directory file), a test page to each contact, and my calendar feed.

A feed URL is a credential: the page shows the URLs only in the answer that creates (or
rotates) them, never again; the database keeps the secret's digest only. Contacts are
shown without their secrets: an e-mail address in full, a webhook's or Slack's host, an
Apprise URL's scheme (its path holds tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from oncall.directory.model import URGENCIES, Contact, User
from oncall.durations import format_duration
from oncall.schedules.feeds import feed_url
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME, SETTINGS
from oncall.web.pages.base import page, render, see_other


@dataclass(frozen=True)
class ShownContact:
    name: str
    type: str
    where: str


@dataclass(frozen=True)
class ShownRules:
    urgency: str
    from_file: bool  # False: the file gives none, so every contact is paged at once
    steps: list[tuple[str, str]]  # (contact, "at once" or "after 5m")


def where(contact: Contact) -> str:
    """Return where a contact's pages go, without its secrets."""
    if contact.type == "email":
        return contact.address
    parts = urlsplit(contact.address)
    if contact.type in ("webhook", "slack") and parts.hostname:
        return f"{parts.scheme}://{parts.hostname}/…"
    return f"{parts.scheme}://…" if parts.scheme else "…"


def shown_rules(user: User) -> list[ShownRules]:
    """Return the user's rules for each urgency, as the page lists them."""
    given = dict(user.notification_rules)
    found = []
    for urgency in URGENCIES:
        steps = [
            (rule.contact, "at once" if not rule.after else f"after {format_duration(rule.after)}")
            for rule in user.rules(urgency)
        ]
        found.append(ShownRules(urgency, urgency in given, steps))
    return found


async def _page(request: web.Request, user: User, **extra: Any) -> web.Response:
    context = {
        "user": user,
        "contacts": [ShownContact(c.name, c.type, where(c)) for c in user.contacts],
        "rules": shown_rules(user),
        "has_feed": await request.app[RUNTIME].schedules.has_feed(user.name),
        "schedules": sorted(request.app[DIRECTORY].current.schedules),
        "outcomes": None,
        "feed_urls": None,
        "rotated": False,
        **extra,
    }
    return await render(request, "me.html", context)


@page
async def me_page(request: web.Request, user: User) -> web.StreamResponse:
    return await _page(request, user)


@page
async def test_page(request: web.Request, user: User) -> web.StreamResponse:
    """Send a test message to each of my contacts now and show each outcome."""
    outcomes = await request.app[RUNTIME].notifier.test_page(user)
    return await _page(request, user, outcomes=outcomes)


@page
async def create_feed(request: web.Request, user: User) -> web.StreamResponse:
    """Create or rotate my calendar feed and show its URLs, this once."""
    schedules = request.app[RUNTIME].schedules
    rotated = await schedules.has_feed(user.name)
    secret = await schedules.create_feed(user.name, user.name, request.app[CLOCK]())
    public_url = request.app[SETTINGS].server.public_url
    urls = [
        (name, feed_url(public_url, user.name, secret, name))
        for name in sorted(request.app[DIRECTORY].current.schedules)
    ]
    return await _page(request, user, feed_urls=urls, rotated=rotated)


@page
async def revoke_feed(request: web.Request, user: User) -> web.StreamResponse:
    """Revoke my calendar feed: every URL built on it stops working."""
    await request.app[RUNTIME].schedules.revoke_feed(user.name, user.name, request.app[CLOCK]())
    raise see_other("/me")


@page
async def back_to_me(_request: web.Request, _user: User) -> web.StreamResponse:
    """A form's address opened again (from the history, or a reload after htmx put it
    there): its answer is not kept, so the page itself."""
    raise see_other("/me")


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/me", me_page)
    app.router.add_get("/me/test-page", back_to_me)
    app.router.add_get("/me/calendar-feed", back_to_me)
    app.router.add_post("/me/test-page", test_page)
    app.router.add_post("/me/calendar-feed", create_feed)
    app.router.add_post("/me/calendar-feed/revoke", revoke_feed)
