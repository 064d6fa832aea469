"""Maintenance windows over HTTP: any user reads them; admins add and delete the API's
(the directory file's are changed in the file). Each admin change is an audit entry."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from oncall.clock import isoformat
from oncall.maintenance.windows import Window
from oncall.web.auth import require_admin, require_user
from oncall.web.keys import CLOCK, RUNTIME
from oncall.web.params import id_param, read_json


def window_json(window: Window, row: Any) -> dict[str, Any]:
    shown = window.describe()
    shown["start"], shown["end"] = isoformat(shown["start"]), isoformat(shown["end"])
    return {
        "id": None if row is None else row.id,
        "source": "directory" if row is None else "api",
        **shown,
        "created_by": None if row is None else row.created_by,
        "created_at": None if row is None else isoformat(row.created_at),
    }


async def add_window(request: web.Request) -> web.Response:
    actor = require_admin(request)
    maintenance = request.app[RUNTIME].maintenance
    data = maintenance.check(await read_json(request))
    window, row = await maintenance.add(data, actor.name, request.app[CLOCK]())
    return web.json_response(window_json(window, row), status=201)


async def list_windows(request: web.Request) -> web.Response:
    require_user(request)
    windows = await request.app[RUNTIME].maintenance.windows()
    now = request.app[CLOCK]()
    return web.json_response(
        {"windows": [{**window_json(w, r), "open": w.is_open(now)} for w, r in windows]}
    )


async def delete_window(request: web.Request) -> web.Response:
    actor = require_admin(request)
    window_id = id_param(request.match_info["id"], "id")
    await request.app[RUNTIME].maintenance.delete(window_id, actor.name, request.app[CLOCK]())
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/maintenance", add_window)
    app.router.add_get("/api/v1/maintenance", list_windows)
    app.router.add_delete("/api/v1/maintenance/{id}", delete_window)
