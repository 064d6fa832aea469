"""`/schedules/{name}`: the next 14 days as a picture and as a table, the schedule's
current and upcoming overrides, and the forms to add and remove them.

A responder adds and removes only their own overrides (the forms offer no more, and the
service refuses the rest); an admin anyone's. The times of the form are read in the
viewer's time zone, as the form says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

from oncall.directory.model import User
from oncall.errors import Forbidden, InvalidInput, OncallError
from oncall.schedules import picture
from oncall.schedules.rotation import Layer
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.pages.base import form_of, page, render, see_other
from oncall.web.pages.oncall import people
from oncall.web.params import id_param

DAYS = 14
LABELS = {"user": "Who", "start": "From", "end": "Until"}  # the form's fields, as labelled
MAX_LOCAL_TIME = 32  # characters: "2026-01-05T12:00:00.000" and some room


def read_local(text: str, zone: ZoneInfo, field: str) -> datetime:
    """Return the UTC instant of a form's `datetime-local` value read in `zone`.

    A local time the clocks skip (the spring-forward gap) or show twice (the autumn overlap)
    is refused, naming `field`, rather than guessed: an override is a promise to be on
    call, and an hour off either way is worse than being asked again.
    """
    if not text.strip():
        raise InvalidInput("a date and time is required", field)
    try:
        naive = datetime.fromisoformat(text.strip()[:MAX_LOCAL_TIME])
    except ValueError:
        raise InvalidInput("expected a date and time such as 2026-01-05T14:30", field) from None
    if naive.tzinfo is not None:
        raise InvalidInput("expected a local date and time without an offset", field)
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    shown = f"{naive:%Y-%m-%d %H:%M}"
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise InvalidInput(
            f"{shown} does not exist in {zone.key}: the clocks go forward over it; "
            "pick a time before or after the change",
            field,
        )
    if first.utcoffset() != second.utcoffset():
        raise InvalidInput(
            f"{shown} happens twice in {zone.key}: the clocks go back over it; "
            "pick a time before or after the repeated hour",
            field,
        )
    return first.astimezone(UTC)


def _every(rotation: timedelta) -> str:
    if rotation % timedelta(weeks=1) == timedelta(0):
        count, unit = rotation // timedelta(weeks=1), "week"
    elif rotation % timedelta(days=1) == timedelta(0):
        count, unit = rotation.days, "day"
    elif rotation % timedelta(hours=1) == timedelta(0):
        count, unit = rotation // timedelta(hours=1), "hour"
    else:
        count, unit = rotation // timedelta(minutes=1), "minute"
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _layer_title(number: int, layer: Layer) -> str:
    restricted = ", restricted hours" if layer.restrict is not None else ""
    return f"Layer {number}: {', '.join(layer.members)} ({_every(layer.rotation)}{restricted})"


def _described(error: OncallError) -> str:
    """Return an error's message, naming the form's field by its label."""
    if isinstance(error, Forbidden):
        return "You may add and remove only your own overrides; an admin may change anyone's."
    if error.field in LABELS:
        return f"{LABELS[error.field]}: {error.message}"
    return error.message


async def _show(
    request: web.Request,
    user: User,
    name: str,
    *,
    status: int = 200,
    error: str | None = None,
    entered: Mapping[str, str] | None = None,
) -> web.Response:
    schedules = request.app[RUNTIME].schedules
    schedule = schedules.schedule(name)
    directory = request.app[DIRECTORY].current
    now = request.app[CLOCK]()
    start, end = picture.window(now, DAYS, schedule.zone)
    timeline = await schedules.timeline(schedule.name, start, end)
    names = people(directory)
    drawn = picture.draw(
        [
            (_layer_title(number, layer), found)
            for number, (layer, found) in enumerate(
                zip(schedule.layers, timeline.layers, strict=True), start=1
            )
        ],
        timeline.final,
        timeline.overrides,
        start,
        DAYS,
        schedule.time_zone,
        names=names,
        now=now,
    )
    overrides: list[dict[str, Any]] = [
        {
            "id": row.id,
            "user": row.user_name,
            "name": names.get(row.user_name, row.user_name),
            "start": row.start_at,
            "end": row.end_at,
            "created_by": row.created_by,
            "state": "current" if row.start_at <= now else "upcoming",
            "removable": user.is_admin or row.user_name == user.name,
        }
        for row in timeline.rows
        if row.end_at > now
    ]
    # A responder may only put themselves on call: the form offers no one else.
    choices = sorted(directory.users) if user.is_admin else [user.name]
    entered = dict(entered or {})
    return await render(
        request,
        "schedule.html",
        {
            "schedule": schedule,
            "picture": drawn,
            "final": drawn.lanes[-1],
            "overrides": overrides,
            "choices": [{"name": n, "full_name": names.get(n, n)} for n in choices],
            "chosen": entered.get("user", user.name),
            "entered_start": entered.get("start", ""),
            "entered_end": entered.get("end", ""),
            "error": error,
            "days": DAYS,
        },
        status,
    )


def _back(name: str) -> web.HTTPSeeOther:
    return see_other(f"/schedules/{quote(name)}")


@page
async def schedule_page(request: web.Request, user: User) -> web.StreamResponse:
    return await _show(request, user, request.match_info["name"])


@page
async def add_override(request: web.Request, user: User) -> web.StreamResponse:
    schedules = request.app[RUNTIME].schedules
    name = schedules.schedule(request.match_info["name"]).name
    form = form_of(request)
    try:
        zone = ZoneInfo(user.time_zone)
        start = read_local(form.get("start", ""), zone, "start")
        end = read_local(form.get("end", ""), zone, "end")
        await schedules.add_override(
            name,
            form.get("user", ""),
            start,
            end,
            user.name,
            request.app[CLOCK](),
            admin=user.is_admin,
        )
    except OncallError as error:
        return await _show(
            request, user, name, status=error.status, error=_described(error), entered=form
        )
    raise _back(name)


@page
async def delete_override(request: web.Request, user: User) -> web.StreamResponse:
    schedules = request.app[RUNTIME].schedules
    name = schedules.schedule(request.match_info["name"]).name
    try:
        await schedules.delete_override(
            name,
            id_param(request.match_info["id"], "id"),
            user.name,
            request.app[CLOCK](),
            admin=user.is_admin,
        )
    except OncallError as error:
        return await _show(request, user, name, status=error.status, error=_described(error))
    raise _back(name)


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/schedules/{name}", schedule_page)
    app.router.add_post("/schedules/{name}/overrides", add_override)
    app.router.add_post(r"/schedules/{name}/overrides/{id:\d+}/delete", delete_override)
