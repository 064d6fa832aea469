"""The one place that reads the wall clock.

Everything else receives `now` as an argument; the web app and the jobs read it once per
request or job through a `Clock` so tests can pin or fast-forward time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    """Return `value` as RFC 3339 in UTC with a `Z` suffix, or None for None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """Return an aware datetime as whole microseconds since the Unix epoch (exact).

    Many times cross from the writer process this way: an int pickles in a tenth of the
    time of a datetime."""
    return (value - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Return the aware UTC datetime `micros` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)
