"""Schedules over HTTP: who is on call, overrides, shifts, and the iCalendar feed."""

from __future__ import annotations

from datetime import timedelta

import icalendar
from aiohttp import web

from oncall.clock import isoformat
from oncall.errors import InvalidInput
from oncall.web.auth import require_user
from oncall.web.keys import CLOCK, RUNTIME
from oncall.web.params import instant, read_json
from oncall.web.views import oncall_json, override_json, shift_json

MAX_RANGE = timedelta(days=92)
FEED_PAST, FEED_FUTURE = timedelta(days=7), timedelta(days=60)


async def add_override(request: web.Request) -> web.Response:
    actor = require_user(request)
    schedules = request.app[RUNTIME].schedules
    name = schedules.schedule(request.match_info["name"]).name
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", "$")
    user = schedules.override_user(body.get("user"))
    start, end = instant(body.get("start"), "start"), instant(body.get("end"), "end")
    row = await schedules.add_override(name, user, start, end, actor.name, request.app[CLOCK]())
    return web.json_response(override_json(row), status=201)


async def list_overrides(request: web.Request) -> web.Response:
    require_user(request)
    rows = await request.app[RUNTIME].schedules.overrides(request.match_info["name"])
    return web.json_response({"overrides": [override_json(r) for r in rows]})


async def delete_override(request: web.Request) -> web.Response:
    require_user(request)
    await request.app[RUNTIME].schedules.delete_override(
        request.match_info["name"], int(request.match_info["id"])
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


async def feed(request: web.Request) -> web.Response:
    """The iCalendar feed; calendar apps cannot send headers, so `?token=` works too."""
    require_user(request, allow_query_token=True)
    schedules = request.app[RUNTIME].schedules
    schedule = schedules.schedule(request.match_info["file"].removesuffix(".ics"))
    now = request.app[CLOCK]()
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//oncall//schedules//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"On call: {schedule.name}")
    for shift in await schedules.shifts(schedule.name, now - FEED_PAST, now + FEED_FUTURE):
        event = icalendar.Event()
        event.add("uid", f"{schedule.name}-{int(shift.start.timestamp())}-{shift.user}@oncall")
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        event.add("summary", f"On call: {shift.user} ({schedule.name})")
        calendar.add_component(event)
    return web.Response(body=calendar.to_ical(), content_type="text/calendar", charset="utf-8")


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
