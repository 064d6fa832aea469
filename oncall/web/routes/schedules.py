"""Schedules over HTTP: who is on call, overrides, shifts, and the iCalendar feeds.

A responder adds and deletes their own overrides; an admin anyone's. The iCalendar feed
is read with the API token in `Authorization`, or (calendar apps cannot send headers) at a
URL carrying the user's feed secret, which reads feeds and nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import icalendar
from aiohttp import web

from oncall.clock import isoformat
from oncall.errors import InvalidInput, NotFound
from oncall.schedules.feeds import feed_url
from oncall.schedules.rotation import Schedule, Shift
from oncall.web.auth import count_failure, refuse_if_throttled, require_self_or_admin, require_user
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME, SETTINGS
from oncall.web.params import id_param, instant, read_json
from oncall.web.views import oncall_json, override_json, shift_json

MAX_RANGE = timedelta(days=92)
FEED_PAST, FEED_FUTURE = timedelta(days=7), timedelta(days=60)
# A feed URL is a credential: kept out of shared caches, search engines and Referer.
FEED_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


async def add_override(request: web.Request) -> web.Response:
    actor = require_user(request)
    schedules = request.app[RUNTIME].schedules
    name = schedules.schedule(request.match_info["name"]).name
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", "$")
    user = schedules.override_user(body.get("user"))
    start, end = instant(body.get("start"), "start"), instant(body.get("end"), "end")
    row = await schedules.add_override(
        name, user, start, end, actor.name, request.app[CLOCK](), admin=actor.is_admin
    )
    return web.json_response(override_json(row), status=201)


async def list_overrides(request: web.Request) -> web.Response:
    require_user(request)
    rows = await request.app[RUNTIME].schedules.overrides(request.match_info["name"])
    return web.json_response({"overrides": [override_json(r) for r in rows]})


async def delete_override(request: web.Request) -> web.Response:
    actor = require_user(request)
    await request.app[RUNTIME].schedules.delete_override(
        request.match_info["name"],
        id_param(request.match_info["id"], "id"),
        actor.name,
        request.app[CLOCK](),
        admin=actor.is_admin,
    )
    return web.Response(status=204)


async def get_shifts(request: web.Request) -> web.Response:
    require_user(request)
    schedules = request.app[RUNTIME].schedules
    schedule = schedules.schedule(request.match_info["name"])
    query, now = request.rel_url.query, request.app[CLOCK]()
    start = instant(query["start"], "start") if "start" in query else now
    end = instant(query["end"], "end") if "end" in query else start + timedelta(days=7)
    if end <= start:
        raise InvalidInput("must be after start", "end")
    if end - start > MAX_RANGE:
        raise InvalidInput(f"the range may span at most {MAX_RANGE.days} days", "end")
    found = await schedules.shifts(schedule.name, start, end)
    return web.json_response(
        {
            "schedule": schedule.name,
            "time_zone": schedule.time_zone,
            "start": isoformat(start),
            "end": isoformat(end),
            "shifts": [shift_json(s, schedule) for s in found],
        }
    )


def _calendar(schedule: Schedule, shifts: list[Shift], now: datetime) -> web.Response:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//oncall//schedules//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"On call: {schedule.name}")
    for shift in shifts:
        event = icalendar.Event()
        event.add("uid", f"{schedule.name}-{int(shift.start.timestamp())}-{shift.user}@oncall")
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        event.add("summary", f"On call: {shift.user} ({schedule.name})")
        calendar.add_component(event)
    return web.Response(
        body=calendar.to_ical(),
        content_type="text/calendar",
        charset="utf-8",
        headers=FEED_HEADERS,
    )


async def _feed_of(request: web.Request, name: str) -> web.Response:
    schedules = request.app[RUNTIME].schedules
    schedule = schedules.schedule(name)
    now = request.app[CLOCK]()
    found = await schedules.shifts(schedule.name, now - FEED_PAST, now + FEED_FUTURE)
    return _calendar(schedule, found, now)


async def feed(request: web.Request) -> web.Response:
    """A schedule's iCalendar feed, for a client that sends the API token in a header."""
    require_user(request)
    return await _feed_of(request, request.match_info["file"].removesuffix(".ics"))


async def secret_feed(request: web.Request) -> web.Response:
    """A schedule's iCalendar feed at a URL carrying a user's feed secret; read-only.

    A wrong secret, a revoked feed and an unknown user all answer 404 alike, and count
    as failed authentications of the client's address."""
    refuse_if_throttled(request)
    user, secret = request.match_info["user"], request.match_info["secret"]
    if not await request.app[RUNTIME].schedules.feed_opens(user, secret):
        count_failure(request)
        raise NotFound("no such calendar feed (revoked, rotated, or never created)")
    return await _feed_of(request, request.match_info["file"].removesuffix(".ics"))


async def create_feed(request: web.Request) -> web.Response:
    """Create or rotate a user's feed secret (the user's own token, or an admin's); the
    answer carries its feed URLs, shown this once. Earlier URLs stop working."""
    name = request.match_info["name"]
    actor = require_self_or_admin(request, name)
    schedules = request.app[RUNTIME].schedules
    secret = await schedules.create_feed(name, actor.name, request.app[CLOCK]())
    public_url = request.app[SETTINGS].server.public_url
    return web.json_response(
        {
            "user": name,
            "feeds": {
                schedule: feed_url(public_url, name, secret, schedule)
                for schedule in request.app[DIRECTORY].current.schedules
            },
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def revoke_feed(request: web.Request) -> web.Response:
    """Revoke a user's feed secret (the user's own token, or an admin's)."""
    name = request.match_info["name"]
    actor = require_self_or_admin(request, name)
    await request.app[RUNTIME].schedules.revoke_feed(name, actor.name, request.app[CLOCK]())
    return web.Response(status=204)


async def who_is_on_call(request: web.Request) -> web.Response:
    """Who is on call now (or `?at=`) for every schedule and every policy level."""
    require_user(request)
    query = request.rel_url.query
    at = instant(query["at"], "at") if "at" in query else request.app[CLOCK]()
    return web.json_response(oncall_json(await request.app[RUNTIME].schedules.who_is_on_call(at)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/oncall", who_is_on_call)
    app.router.add_post("/api/v1/schedules/{name}/overrides", add_override)
    app.router.add_get("/api/v1/schedules/{name}/overrides", list_overrides)
    app.router.add_delete(r"/api/v1/schedules/{name}/overrides/{id:\d+}", delete_override)
    app.router.add_get("/api/v1/schedules/{name}/shifts", get_shifts)
    app.router.add_get(r"/api/v1/schedules/{file:[^/]+\.ics}", feed)
    app.router.add_post("/api/v1/users/{name}/calendar-feed", create_feed)
    app.router.add_delete("/api/v1/users/{name}/calendar-feed", revoke_feed)
    # GET only (and the HEAD aiohttp adds): the feed URL reads and never writes.
    app.router.add_get(r"/feeds/{user}/{secret}/{file:[^/]+\.ics}", secret_feed)
