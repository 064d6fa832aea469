"""Prometheus durations (`30s`, `5m`, `1h30m`, `1w`), parsed and formatted."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = (
    ("y", 365 * 86400_000),
    ("w", 7 * 86400_000),
    ("d", 86400_000),
    ("h", 3600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
# Same grammar as Prometheus' model.ParseDuration: units in descending order, each at most once.
_PATTERN = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


def parse_duration(text: str) -> timedelta:
    """Return the timedelta written as a Prometheus duration.

    Raises ValueError for anything else (empty, unknown unit, units out of order, a sign).
    """
    if text == "0":
        return timedelta(0)
    match = _PATTERN.match(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m or 1h30m")
    millis = sum(
        int(group) * factor
        for group, (_, factor) in zip(match.groups(), _UNITS, strict=True)
        if group
    )
    return timedelta(milliseconds=millis)


def format_duration(value: timedelta) -> str:
    """Return `value` as the shortest Prometheus duration (`0s` for zero)."""
    millis = int(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, factor in _UNITS:
        count, millis = divmod(millis, factor)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
