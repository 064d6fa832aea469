"""`POST /api/v1/simulate`: who would be paged, when and how, if an alert fired at a
moment (oncall.simulate). Any user's API token; it writes nothing and pages nobody."""

from __future__ import annotations

from aiohttp import web

from oncall.web.auth import require_user
from oncall.web.keys import RUNTIME
from oncall.web.params import read_json

# The body carries an alert's own body: room for an Events v2 event at its limit (512 KiB)
# or an Alertmanager group of a few hundred alerts, far below the webhooks' own cap.
MAX_BODY = 1 << 20


async def simulate(request: web.Request) -> web.Response:
    require_user(request)
    body = await read_json(request, MAX_BODY)
    return web.json_response(await request.app[RUNTIME].simulator.run(body))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/simulate", simulate)
