"""The incidents pages: `/`, the list (being built further), and `/incidents/{id}`."""

from __future__ import annotations

from aiohttp import web

from oncall.directory.model import User
from oncall.web.keys import RUNTIME
from oncall.web.pages.base import page, render


@page
async def incident_list(request: web.Request, _user: User) -> web.StreamResponse:
    rows = await request.app[RUNTIME].incidents.list_incidents(
        ("triggered", "acknowledged"), 50, None
    )
    return await render(request, "incidents.html", {"incidents": rows})


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/", incident_list)
