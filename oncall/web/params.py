"""Reading requests: JSON bodies, query parameters and times, each error naming its field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from oncall.db import jsoncodec
from oncall.errors import InvalidInput

MAX_LIMIT = 500


async def read_json(request: web.Request) -> Any:
    """Return the decoded JSON body; raises InvalidInput, or 413 past the body limit."""
    raw = await request.read()
    try:
        return jsoncodec.loads(raw)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise InvalidInput(f"invalid JSON: {exc}", "$") from None


def statuses_param(query: Mapping[str, str], allowed: tuple[str, ...]) -> list[str]:
    """Return the comma-separated `status` filter; raises InvalidInput for unknown ones."""
    statuses = [s.strip() for s in query.get("status", "").split(",") if s.strip()]
    for status in statuses:
        if status not in allowed:
            raise InvalidInput(
                f"unknown status {status!r}; expected {', '.join(allowed)}", "status"
            )
    return statuses


def limit_param(query: Mapping[str, str], default: int) -> int:
    """Return the `limit` parameter (1 to MAX_LIMIT); raises InvalidInput."""
    try:
        limit = int(query.get("limit", str(default)))
    except ValueError:
        raise InvalidInput("expected an integer", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"expected 1 to {MAX_LIMIT}", "limit")
    return limit


def instant(value: Any, field: str) -> datetime:
    """Return an ISO 8601 time that carries its offset; raises InvalidInput naming `field`."""
    if not isinstance(value, str):
        raise InvalidInput("expected an ISO 8601 time with an offset", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value[:40]!r} is not an ISO 8601 time", field) from None
    if parsed.tzinfo is None:
        raise InvalidInput("the time needs an offset, e.g. 2026-12-01T09:00:00+01:00", field)
    return parsed
