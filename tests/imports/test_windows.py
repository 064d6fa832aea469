"""Weekly windows cut into the directory's restrictions: they cover exactly the windows."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from oncall.imports.directory_writer import ImportedRestriction
from oncall.imports.windows import DAY, WEEK, minute_of_week, weekly_restrictions
from oncall.schedules.rotation import DAYS, Layer, Restriction, layer_on_call

MON, FRI, SAT, SUN = 0, 4, 5, 6
UTC_ZONE = ZoneInfo("UTC")


def covered(restrictions: list[ImportedRestriction] | None) -> set[int]:
    """Return the minutes of the week (of a week starting Monday 2029-01-01, UTC) that
    layers restricted by `restrictions` cover, by the schedule code's own reading."""
    if restrictions is None:
        return set(range(WEEK))
    monday = datetime(2029, 1, 1, tzinfo=UTC_ZONE)
    found = set()
    for r in restrictions:
        layer = Layer(
            ("ann",),
            timedelta(weeks=1),
            datetime(2028, 1, 3),
            Restriction(frozenset(DAYS.index(d) for d in r.days), r.start, r.end),
        )
        found |= {
            m
            for m in range(0, WEEK, 30)
            if layer_on_call(layer, UTC_ZONE, monday + timedelta(minutes=m))
        }
    return found


def expected(windows: list[tuple[int, int]]) -> set[int]:
    found = set()
    for start, end in windows:
        end = end if end > start else end + WEEK
        found |= {m % WEEK for m in range(start, end) if m % 30 == 0}
    return found


@pytest.mark.parametrize(
    "windows",
    [
        # business hours, one window a weekday: one restriction
        [(minute_of_week(d, 9, 0), minute_of_week(d, 17, 0)) for d in range(5)],
        # overnight, Monday to Thursday: one restriction, to the next morning
        [(minute_of_week(d, 17, 0), minute_of_week(d + 1, 9, 0)) for d in range(4)],
        # the weekend, Friday evening to Monday morning
        [(minute_of_week(FRI, 17, 0), minute_of_week(MON, 9, 0))],
        # Monday 09:00 to Friday 17:00 in one window
        [(minute_of_week(MON, 9, 0), minute_of_week(FRI, 17, 0))],
        # Sunday night into Monday, across the week's end
        [(minute_of_week(SUN, 22, 0), minute_of_week(MON, 6, 0))],
        # overlapping windows merge
        [
            (minute_of_week(SAT, 8, 0), minute_of_week(SAT, 14, 0)),
            (minute_of_week(SAT, 12, 0), minute_of_week(SAT, 20, 0)),
        ],
        # exactly a day, from noon
        [(minute_of_week(MON, 12, 0), minute_of_week(MON, 12, 0) + DAY)],
    ],
)
def test_the_restrictions_cover_exactly_the_windows(windows):
    restrictions = weekly_restrictions(windows)
    assert restrictions is not None
    assert all(r.start != r.end for r in restrictions)
    assert covered(restrictions) == expected(windows)


def test_windows_of_the_same_hours_are_one_restriction():
    business = [(minute_of_week(d, 9, 0), minute_of_week(d, 17, 0)) for d in range(5)]
    assert weekly_restrictions(business) == [
        ImportedRestriction(("mon", "tue", "wed", "thu", "fri"), time(9), time(17))
    ]
    nights = [(minute_of_week(d, 17, 0), minute_of_week(d + 1, 9, 0)) for d in range(7)]
    assert weekly_restrictions(nights) == [ImportedRestriction(DAYS, time(17), time(9))]


@pytest.mark.parametrize(
    "windows",
    [
        [(0, 0)],  # an end equal to the start: the whole week
        [(minute_of_week(d, 0, 0), minute_of_week(d, 0, 0) + DAY) for d in range(7)],
        [(minute_of_week(MON, 9, 0), minute_of_week(MON, 9, 0) + WEEK)],
    ],
)
def test_the_whole_week_needs_no_restriction(windows):
    assert weekly_restrictions(windows) is None
