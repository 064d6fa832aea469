"""The audit log over HTTP: admins read who changed what, newest first, a page at a time."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from oncall.clock import isoformat
from oncall.errors import InvalidInput
from oncall.web.auth import require_admin
from oncall.web.keys import RUNTIME
from oncall.web.params import limit_param

MAX_CURSOR = 32  # characters; the cursors this route writes are far shorter
MAX_ID = 2**31 - 1  # the id column's range


def _cursor_id(cursor: str) -> int:
    """Return the entry id a cursor of `_make_cursor` carries; raises InvalidInput."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError(len(cursor))
        kind, _, value = (
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
        )
        if kind != "audit" or not value.isascii() or not value.isdigit():
            raise ValueError(kind)
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(number)
        return number
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("not a cursor returned by this API", "cursor") from None


def _make_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{entry_id}".encode()).decode().rstrip("=")


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
    before = _cursor_id(query["cursor"]) if query.get("cursor") else None
    rows = await request.app[RUNTIME].audit.newest(limit + 1, before)
    next_cursor = _make_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return web.json_response(
        {"entries": [entry_json(r) for r in rows[:limit]], "next_cursor": next_cursor}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit", list_entries)
