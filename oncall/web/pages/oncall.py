"""`/oncall`: who is on call now on every schedule and at every level of every policy, and
when each schedule next hands off, to whom."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web

from oncall.directory.model import Directory, User
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.pages.base import page, render

# How far ahead the next handoff is looked for; a schedule of one person never hands off.
HANDOFF_HORIZON = timedelta(days=35)


def person(directory: Directory, name: str | None) -> dict[str, str] | None:
    """Return a user as the pages show them ({"name", "full_name"}), or None for nobody; a
    user the directory no longer has keeps their name."""
    if name is None:
        return None
    user = directory.users.get(name)
    return {"name": name, "full_name": (user.full_name if user else "") or name}


def people(directory: Directory) -> Mapping[str, str]:
    """Return each user's name as the pages show it."""
    return {name: user.full_name or name for name, user in directory.users.items()}


def _target(text: str) -> dict[str, str]:
    kind, _, name = text.partition(":")
    return {"kind": kind, "name": name}


@page
async def oncall_page(request: web.Request, _user: User) -> web.StreamResponse:
    schedules = request.app[RUNTIME].schedules
    directory = request.app[DIRECTORY].current
    now = request.app[CLOCK]()
    current = await schedules.who_is_on_call(now)
    rows: list[dict[str, Any]] = []
    for name, on_call in current.schedules.items():
        schedule = directory.schedules.get(name)
        handoff = await schedules.next_handoff(name, now, HANDOFF_HORIZON)
        rows.append(
            {
                "name": name,
                "time_zone": schedule.time_zone if schedule else "",
                "on_call": person(directory, on_call),
                "handoff_at": handoff.at if handoff else None,
                "handoff_to": person(directory, handoff.to) if handoff else None,
            }
        )
    policies = [
        {
            "name": policy,
            "levels": [
                {
                    "number": number,
                    "targets": [_target(t) for t in targets],
                    "people": [person(directory, u) for u in users],
                }
                for number, targets, users in levels
            ],
        }
        for policy, levels in current.policies.items()
    ]
    return await render(
        request,
        "oncall.html",
        {
            "now": now,
            "schedules": rows,
            "policies": policies,
            "horizon_days": HANDOFF_HORIZON.days,
        },
    )


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/oncall", oncall_page)
