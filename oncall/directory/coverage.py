"""Coverage: the spans of a window with nobody on call, per schedule and in common. Pure.

Exact, never sampled: a schedule's gaps are the complement of its own shifts
(`oncall.schedules.rotation.shifts`), whose edges are every handoff, restriction window and
override as an instant, so a handoff that moves across a daylight-saving change moves the
gap with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from oncall.schedules.overrides import Override
from oncall.schedules.rotation import Schedule, shifts

Span = tuple[datetime, datetime]  # [start, end), aware instants


def schedule_gaps(
    schedule: Schedule, overrides: Sequence[Override], start: datetime, end: datetime
) -> list[Span]:
    """Return the spans of [start, end) with nobody on call in `schedule` (its layers and
    `overrides`), in order; none when someone always is."""
    gaps = []
    cursor = start
    for shift in shifts(schedule, overrides, start, end):
        if shift.start > cursor:
            gaps.append((cursor, shift.start))
        cursor = max(cursor, shift.end)
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def common_gaps(gaps: Sequence[Sequence[Span]]) -> list[Span]:
    """Return the spans inside a span of every list of `gaps` (each sorted and disjoint, as
    `schedule_gaps` returns them), in order; none when `gaps` is empty."""
    if not gaps:
        return []
    common = list(gaps[0])
    for other in gaps[1:]:
        common = _intersect(common, other)
    return common


def _intersect(first: Sequence[Span], second: Sequence[Span]) -> list[Span]:
    found = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            found.append((start, end))
        # The span that ends first can overlap nothing further along the other list.
        if first[i][1] <= second[j][1]:
            i += 1
        else:
            j += 1
    return found
