"""The /maintenance page: current and upcoming windows (the directory file's and the API's),
each in the viewer's time zone; admins add windows and end the API's.

The form posts what the API takes (`POST /api/v1/maintenance`), its times read as local
times in the viewer's zone, and goes through the same check. Ending a window deletes it,
as the API's only way to end one does: an open window closes at once and what it held
pages again (from level 1), an upcoming one never opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from oncall.directory.model import User
from oncall.errors import Forbidden, InvalidInput
from oncall.maintenance.windows import Window
from oncall.schedules.rotation import DAYS, localize
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.pages.base import form_of, local_time, page, render, see_other

ADMINS_ONLY = "Only an admin adds or ends maintenance windows."
LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # an <input type="datetime-local"> value
_LIST_SPLIT = re.compile(r"[\s,]+")
_INDEXED = re.compile(r"^(match|integrations)\[(\d+)\]$")
_FIELDS = {"name": "Name", "start": "Start", "end": "End", "match": "Matchers"}
OPEN, UPCOMING, ENDED = "open", "upcoming", "ended"


@dataclass(frozen=True)
class Shown:
    """A window as the page lists it, in the viewer's time zone."""

    id: int | None  # the API's id; None for the directory file's
    name: str
    state: str  # OPEN, UPCOMING or ENDED
    state_words: str  # "open now, until ...", "opens ...", "ended ..."
    when: str  # one-off: from ... until ...; weekly: in words, in its own zone
    matchers: list[str]
    integrations: list[str]
    source: str
    sort_key: datetime


def _day_words(days: list[str]) -> str:
    if len(days) == len(DAYS):
        return "every day"
    return "every " + ", ".join(d.capitalize() for d in days)


def shown(window: Window, row: Any, now: datetime, zone: str) -> Shown:
    """Return what the page says about `window` (its `row` from the API, or None) at `now`
    for a viewer in `zone`."""
    spans = window.spans(now)
    current = next(((s, e) for s, e in spans if s <= now < e), None)
    following = min((s for s, _ in spans if s > now), default=None)
    if current is not None:
        state, sort_key = OPEN, current[0]
        words = f"Open now, until {local_time(current[1], zone)}"
    elif following is not None:
        state, sort_key = UPCOMING, following
        words = f"Not open now; opens {local_time(following, zone)}"
    else:
        last_end = max(e for _, e in spans)
        state, sort_key = ENDED, last_end
        words = f"Ended {local_time(last_end, zone)}"
    described = window.describe()
    every = described["every"]
    if every is None:
        when = f"From {local_time(window.start, zone)} until {local_time(window.end, zone)}"
    else:
        next_day = " the next day" if every["to"] <= every["from"] else ""
        when = (
            f"Weekly, {_day_words(every['days'])} from {every['from']} until "
            f"{every['to']}{next_day} ({every['time_zone']} time)"
        )
    if row is None:
        source = "In the directory file (changed there)"
    else:
        source = f"Added by {row.created_by} on {local_time(row.created_at, zone)}"
    return Shown(
        id=None if row is None else row.id,
        name=window.name,
        state=state,
        state_words=words,
        when=when,
        matchers=described["match"],
        integrations=described["integrations"],
        source=source,
        sort_key=sort_key,
    )


def local_input(value: str, field: str, zone: str) -> str:
    """Return a datetime-local field's value (a local time in `zone`) as an ISO 8601 time
    with its offset, as the API takes it; raises InvalidInput naming `field`."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("expected a date and time such as 2026-12-01T02:00", field) from None
    if naive.tzinfo is not None:
        raise InvalidInput("expected a local date and time, without an offset", field)
    # A time in a daylight-saving gap opens at the first instant after it, as windows do.
    return localize(naive, ZoneInfo(zone)).astimezone(ZoneInfo(zone)).isoformat()


def window_body(form: dict[str, str], zone: str) -> dict[str, Any]:
    """Return the API body the add form stands for: the same shape `POST
    /api/v1/maintenance` takes. Raises InvalidInput for a time that is not one."""
    body: dict[str, Any] = {
        "name": form.get("name", ""),
        "start": local_input(form.get("start", ""), "start", zone),
        "end": local_input(form.get("end", ""), "end", zone),
    }
    lines = [line.strip() for line in form.get("match", "").splitlines() if line.strip()]
    if lines:
        body["match"] = lines
    names = [n for n in _LIST_SPLIT.split(form.get("integrations", "")) if n]
    if names:
        body["integrations"] = names
    return body


def field_words(field: str | None) -> str:
    """Return the form's name for a field the check names (`match[1]`: line 2)."""
    if field is None or field == "$":
        return ""
    found = _INDEXED.match(field)
    if found and found[1] == "match":
        return f"Matchers, line {int(found[2]) + 1}"
    if found:
        return "Integrations"
    return _FIELDS.get(field, field)


async def _page(
    request: web.Request,
    user: User,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    now = request.app[CLOCK]()
    zone = user.time_zone
    found = [shown(w, r, now, zone) for w, r in await request.app[RUNTIME].maintenance.windows()]
    # Open ones first, by when they opened, then the upcoming by when they open; the ended
    # ones apart, the latest first.
    found.sort(key=lambda s: (s.state != OPEN, s.sort_key))
    start = now.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
    values = form or {
        "name": "",
        "start": start.strftime(LOCAL_INPUT),
        "end": (start + timedelta(hours=1)).strftime(LOCAL_INPUT),
        "match": "",
        "integrations": "",
    }
    context = {
        "windows": [s for s in found if s.state != ENDED],
        "ended": [s for s in reversed(found) if s.state == ENDED],
        "admin": user.is_admin,
        "values": values,
        "error": error,
        "integrations": sorted(request.app[DIRECTORY].current.integrations),
    }
    return await render(request, "maintenance.html", context, status)


@page
async def maintenance_page(request: web.Request, user: User) -> web.StreamResponse:
    return await _page(request, user)


@page
async def add_window(request: web.Request, user: User) -> web.StreamResponse:
    if not user.is_admin:
        raise Forbidden(ADMINS_ONLY)
    form = form_of(request)
    maintenance = request.app[RUNTIME].maintenance
    try:
        data = maintenance.check(window_body(form, user.time_zone))
    except InvalidInput as error:
        where = field_words(error.field)
        message = f"{where}: {error.message}" if where else error.message
        kept = {k: form.get(k, "") for k in ("name", "start", "end", "match", "integrations")}
        return await _page(request, user, kept, message, 400)
    await maintenance.add(data, user.name, request.app[CLOCK]())
    raise see_other("/maintenance")


@page
async def end_window(request: web.Request, user: User) -> web.StreamResponse:
    if not user.is_admin:
        raise Forbidden(ADMINS_ONLY)
    window_id = int(request.match_info["id"])
    await request.app[RUNTIME].maintenance.delete(window_id, user.name, request.app[CLOCK]())
    raise see_other("/maintenance")


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/maintenance", maintenance_page)
    app.router.add_post("/maintenance", add_window)
    app.router.add_post(r"/maintenance/{id:\d{1,18}}/end", end_window)
