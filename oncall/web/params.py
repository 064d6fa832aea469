"""Reading requests: JSON bodies, ids, query parameters and times, each error naming its
field. A value out of range is refused here, before it can overflow a database column or
a date computation deeper down."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from oncall.db import jsoncodec
from oncall.errors import InvalidInput
from oncall.web.bodies import SMALL_BODY, read_body

MAX_LIMIT = 500
MAX_ID = 2**31 - 1  # the database's integer columns (PostgreSQL's `integer`)
# Times the schedules can compute with: far enough from datetime's own ends that a range
# or a rotation added to them cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_CURSOR = 32  # characters; the cursors this service writes are far shorter


def make_cursor(kind: str, row_id: int) -> str:
    """Return the opaque cursor of a list's next page: the rows of `kind` below `row_id`."""
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode().rstrip("=")


def cursor_id(cursor: str, kind: str) -> int:
    """Return the id a cursor of `make_cursor(kind, ...)` carries; raises InvalidInput
    naming `cursor` for anything else."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError(len(cursor))
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, _, value = text.partition(":")
        if found != kind:
            raise ValueError(found)
        return id_param(value, "cursor")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("not a cursor returned by this API", "cursor") from None


async def read_json(request: web.Request, limit: int = SMALL_BODY) -> Any:
    """Return the decoded JSON body of at most `limit` bytes; raises InvalidInput (not
    JSON, not UTF-8, nested too deeply), PayloadTooLarge or BodyTimeout (oncall.web.bodies)."""
    raw = await read_body(request, limit)
    try:
        return jsoncodec.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"invalid JSON: {exc}", "$") from None


def id_param(value: str, field: str) -> int:
    """Return the id written in `value` (1 to MAX_ID); raises InvalidInput naming `field`."""
    # At most as many digits as MAX_ID has: int() of a long string is refused late and slowly.
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_ID)):
        raise InvalidInput(f"expected an id from 1 to {MAX_ID}", field)
    number = int(value)
    if not 1 <= number <= MAX_ID:
        raise InvalidInput(f"expected an id from 1 to {MAX_ID}", field)
    return number


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
    """Return an ISO 8601 time that carries its offset, from EARLIEST to before LATEST;
    raises InvalidInput naming `field`."""
    if not isinstance(value, str):
        raise InvalidInput("expected an ISO 8601 time with an offset", field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{value[:40]!r} is not an ISO 8601 time", field) from None
    if parsed.tzinfo is None:
        raise InvalidInput("the time needs an offset, e.g. 2026-12-01T09:00:00+01:00", field)
    try:
        in_range = EARLIEST <= parsed < LATEST
    except OverflowError:  # its offset takes it out of datetime's range (year 1 at +14:00)
        in_range = False
    if not in_range:
        raise InvalidInput(f"expected a time from {EARLIEST.year} to before {LATEST.year}", field)
    return parsed
