"""Schedules over HTTP: overrides, shifts, the iCalendar feed, and who is on call."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import icalendar
from aiohttp import web
from sqlalchemy.engine import Row

from oncall import escalation, store_schedules
from oncall.clock import isoformat
from oncall.errors import InvalidInput, NotFound
from oncall.schedules import Schedule, Shift, on_call, shifts
from oncall.web.api import read_json
from oncall.web.auth import require_user
from oncall.web.keys import CLOCK, DATABASE, DIRECTORY

MAX_RANGE = timedelta(days=92)
FEED_PAST, FEED_FUTURE = timedelta(days=7), timedelta(days=60)


def instant(value: Any, field: str) -> datetime:
    """Return an ISO 8601 time that carries its offset; raises InvalidInput naming `field`."""
    if not isinstance(value, str):
        raise InvalidInput("expected an ISO 8601 time with an offset", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value[:40]!r} is not an ISO 8601 time", field) from None
    if parsed.tzinfo is None:
        raise InvalidInput("the time needs an offset, e.g. 2026-12-01T09:00:00+01:00", field)
    return parsed


def schedule_named(request: web.Request, name: str) -> Schedule:
    schedule = request.app[DIRECTORY].current.schedules.get(name)
    if schedule is None:
        raise NotFound(f"schedule {name!r} not found", "name")
    return schedule


def override_json(row: Row[Any]) -> dict[str, Any]:
    return {"id": row.id, "schedule": row.schedule, "user": row.user_name,
            "start": isoformat(row.start_at), "end": isoformat(row.end_at),
            "created_by": row.created_by, "created_at": isoformat(row.created_at)}


def shift_json(shift: Shift, schedule: Schedule) -> dict[str, Any]:
    zone = schedule.zone
    return {"user": shift.user, "start": isoformat(shift.start), "end": isoformat(shift.end),
            "start_local": shift.start.astimezone(zone).isoformat(),
            "end_local": shift.end.astimezone(zone).isoformat()}


async def add_override(request: web.Request) -> web.Response:
    actor = require_user(request)
    schedule = schedule_named(request, request.match_info["name"])
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", "$")
    user = body.get("user")
    if not isinstance(user, str) or user not in request.app[DIRECTORY].current.users:
        raise InvalidInput("expected the name of a user in the directory", "user")
    start, end = instant(body.get("start"), "start"), instant(body.get("end"), "end")
    if end <= start:
        raise InvalidInput("must be after start", "end")
    row = await request.app[DATABASE].run(store_schedules.add_override, schedule.name, user,
                                          start, end, actor.name, request.app[CLOCK]())
    return web.json_response(override_json(row), status=201)


async def list_overrides(request: web.Request) -> web.Response:
    require_user(request)
    schedule = schedule_named(request, request.match_info["name"])
    rows = await request.app[DATABASE].run(store_schedules.list_overrides, schedule.name)
    return web.json_response({"overrides": [override_json(r) for r in rows]})


async def delete_override(request: web.Request) -> web.Response:
    require_user(request)
    schedule = schedule_named(request, request.match_info["name"])
    found = await request.app[DATABASE].run(store_schedules.delete_override, schedule.name,
                                            int(request.match_info["id"]))
    if not found:
        raise NotFound("override not found", "id")
    return web.Response(status=204)


async def schedule_shifts(request: web.Request, schedule: Schedule, start: datetime,
                          end: datetime) -> list[Shift]:
    overrides = await request.app[DATABASE].run(store_schedules.overrides_between,
                                                schedule.name, start, end)
    return shifts(schedule, overrides, start, end)


async def get_shifts(request: web.Request) -> web.Response:
    require_user(request)
    schedule = schedule_named(request, request.match_info["name"])
    query, now = request.rel_url.query, request.app[CLOCK]()
    start = instant(query["start"], "start") if "start" in query else now
    end = instant(query["end"], "end") if "end" in query else start + timedelta(days=7)
    if end <= start:
        raise InvalidInput("must be after start", "end")
    if end - start > MAX_RANGE:
        raise InvalidInput(f"the range may span at most {MAX_RANGE.days} days", "end")
    found = await schedule_shifts(request, schedule, start, end)
    return web.json_response({"schedule": schedule.name, "time_zone": schedule.time_zone,
                              "start": isoformat(start), "end": isoformat(end),
                              "shifts": [shift_json(s, schedule) for s in found]})


async def feed(request: web.Request) -> web.Response:
    """The iCalendar feed; calendar apps cannot send headers, so `?token=` works too."""
    require_user(request, allow_query_token=True)
    name = request.match_info["file"].removesuffix(".ics")
    schedule = schedule_named(request, name)
    now = request.app[CLOCK]()
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//oncall//schedules//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"On call: {schedule.name}")
    for shift in await schedule_shifts(request, schedule, now - FEED_PAST, now + FEED_FUTURE):
        event = icalendar.Event()
        event.add("uid", f"{schedule.name}-{int(shift.start.timestamp())}-{shift.user}@oncall")
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        event.add("summary", f"On call: {shift.user} ({schedule.name})")
        calendar.add_component(event)
    return web.Response(body=calendar.to_ical(), content_type="text/calendar",
                        charset="utf-8")


async def who_is_on_call(request: web.Request) -> web.Response:
    """Who is on call now (or `?at=`) for every schedule and every policy level."""
    require_user(request)
    query = request.rel_url.query
    at = instant(query["at"], "at") if "at" in query else request.app[CLOCK]()
    directory = request.app[DIRECTORY].current
    overrides = {}
    for name in directory.schedules:
        overrides[name] = await request.app[DATABASE].run(
            store_schedules.overrides_between, name, at, at + timedelta(microseconds=1))
    schedules = {name: on_call(schedule, overrides[name], at)
                 for name, schedule in directory.schedules.items()}
    policies = {
        policy.name: [{"level": index, "targets": [str(t) for t in level.targets],
                       "on_call": escalation.recipients(level.targets, directory, overrides,
                                                        at)[0]}
                      for index, level in enumerate(policy.levels, start=1)]
        for policy in directory.policies.values()}
    return web.json_response({"at": isoformat(at),
                              "schedules": schedules,
                              "policies": policies})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/oncall", who_is_on_call)
    app.router.add_post("/api/v1/schedules/{name}/overrides", add_override)
    app.router.add_get("/api/v1/schedules/{name}/overrides", list_overrides)
    app.router.add_delete(r"/api/v1/schedules/{name}/overrides/{id:\d+}", delete_override)
    app.router.add_get("/api/v1/schedules/{name}/shifts", get_shifts)
    app.router.add_get(r"/api/v1/schedules/{file:[^/]+\.ics}", feed)
