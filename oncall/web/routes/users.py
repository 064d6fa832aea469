"""Users over HTTP: a test page, so people can check their contacts before their first shift."""

from __future__ import annotations

from aiohttp import web

from oncall.errors import NotFound
from oncall.web.auth import require_self_or_admin
from oncall.web.keys import DIRECTORY, RUNTIME


async def test_page(request: web.Request) -> web.Response:
    """Send a test message to each of the user's contacts now; answer each outcome.

    The user's own token, or an admin's. Writes no incident and no notification row.
    """
    name = request.match_info["name"]
    require_self_or_admin(request, name)
    user = request.app[DIRECTORY].current.users.get(name)
    if user is None:
        raise NotFound(f"no user named {name!r}", "name")
    outcomes = await request.app[RUNTIME].notifier.test_page(user)
    return web.json_response(
        {
            "results": [
                {
                    "contact": outcome.contact,
                    "type": outcome.type,
                    "outcome": "sent" if outcome.error is None else "failed",
                    "error": outcome.error,
                }
                for outcome in outcomes
            ]
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/users/{name}/test-page", test_page)
