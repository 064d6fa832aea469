"""The one place that reads the wall clock.

Everything else receives `now` as an argument; the web app and the jobs read it once per
request or job through a `Clock` so tests can pin or fast-forward time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    """Return `value` as RFC 3339 in UTC with a `Z` suffix, or None for None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
