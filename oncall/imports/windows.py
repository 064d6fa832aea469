"""Weekly on-call windows as the directory's restrictions. Pure.

Opsgenie's time restrictions and Grafana OnCall's shifts give windows of the week: from a
weekday and time to another, possibly days later. A directory restriction is one window per
listed day, shorter than a day (`from` to `to`, the next day when `to` is not after `from`).
So a window is cut into such pieces, pieces of the same hours are grouped by day, and each
group becomes a layer of its own (the same rotation, restricted to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time

from oncall.imports.directory_writer import ImportedRestriction
from oncall.schedules.rotation import DAYS

DAY = 24 * 60  # minutes
WEEK = 7 * DAY
HALF_DAY = DAY // 2


def minute_of_week(day: int, hour: int, minute: int) -> int:
    """Return the minutes from Monday 00:00 to `day` (0 = Monday) at `hour`:`minute`."""
    return (day * DAY + hour * 60 + minute) % WEEK


def weekly_restrictions(windows: Iterable[tuple[int, int]]) -> list[ImportedRestriction] | None:
    """Return restrictions that together cover exactly the union of `windows`, or None
    when that union is the whole week (no restriction needed).

    A window is (start, end) in minutes from Monday 00:00; an end not after its start wraps
    into the next week, and an end equal to its start is the whole week.
    """
    spans: list[tuple[int, int]] = []
    for start, end in windows:
        start, end = start % WEEK, end % WEEK
        if end == start:
            return None
        if end < start:
            spans += [(start, WEEK), (0, end)]
        else:
            spans.append((start, end))
    merged = _union(spans)
    if merged == [(0, WEEK)]:
        return None
    if len(merged) > 1 and merged[0][0] == 0 and merged[-1][1] == WEEK:
        # Sunday night into Monday morning is one window, not two.
        merged = [(merged[-1][0], merged[0][1] + WEEK), *merged[1:-1]]
    by_hours: dict[tuple[int, int], set[int]] = {}
    for start, end in merged:
        for piece_start, piece_end in _pieces(start, end):
            day = (piece_start // DAY) % 7
            key = (piece_start % DAY, piece_end % DAY)
            by_hours.setdefault(key, set()).add(day)
    restrictions = [
        ImportedRestriction(tuple(DAYS[d] for d in sorted(days)), _time(start), _time(end))
        for (start, end), days in by_hours.items()
    ]
    return sorted(restrictions, key=lambda r: (DAYS.index(r.days[0]), r.start))


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Cut [start, end) into windows shorter than a day: what is left when it is shorter,
    else up to the next midnight (a whole day: two halves)."""
    pieces = []
    while start < end:
        if end - start < DAY:
            cut = end
        elif start % DAY:
            cut = start - start % DAY + DAY
        else:
            cut = start + HALF_DAY
        pieces.append((start, cut))
        start = cut
    return pieces


def _time(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)
