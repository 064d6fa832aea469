"""Every page of the web UI, and its static files."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from oncall.web.pages import (
    base,
    incidents,
    login,
    maintenance,
    me,
    oncall,
    schedules,
    simulate,
    status,
)

STATIC = Path(__file__).resolve().parent.parent / "static"


def add_routes(app: web.Application) -> None:
    """Add the template environment, the static files and every page to `app`."""
    base.setup(app)
    app.router.add_static("/static", STATIC, append_version=False)
    for module in (login, incidents, oncall, schedules, me, maintenance, simulate, status):
        module.add_routes(app)
