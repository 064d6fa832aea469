"""The audit log over HTTP: admins read who changed what, newest first, a page at a time."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from oncall.clock import isoformat
from oncall.web.auth import require_admin
from oncall.web.keys import RUNTIME
from oncall.web.params import cursor_id, limit_param, make_cursor


def entry_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": isoformat(row.at),
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "detail": row.detail,
    }


async def list_entries(request: web.Request) -> web.Response:
    """Entries newest first; `next_cursor` (null on the last page) reads the next page."""
    require_admin(request)
    query = request.rel_url.query
    limit = limit_param(query, 50)
    before = cursor_id(query["cursor"], "audit") if query.get("cursor") else None
    rows = await request.app[RUNTIME].audit.newest(limit + 1, before)
    next_cursor = make_cursor("audit", rows[limit - 1].id) if len(rows) > limit else None
    return web.json_response(
        {"entries": [entry_json(r) for r in rows[:limit]], "next_cursor": next_cursor}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit", list_entries)
