"""Incidents per local day over the last 30 days, the medians to acknowledge and to
resolve, and the bar chart's layout."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from oncall.incidents.stats import (
    axis_top,
    chart,
    duration_words,
    first_day,
    median,
    summarize,
    window_start,
)

# A Monday in winter, 12:00 UTC (13:00 in Berlin).
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    """Return an instant in UTC in January 2026, or in December 2025 (`month=12`)."""
    return datetime(2025 if month == 12 else 2026, month, day, hour, minute, tzinfo=UTC)


def counts(summary) -> dict[date, int]:
    return {d.day: d.opened for d in summary.days if d.opened}


def test_the_window_is_today_and_the_29_local_days_before_it() -> None:
    summary = summarize([], NOW, "Europe/Berlin")
    assert len(summary.days) == 30
    assert summary.days[0].day == date(2025, 12, 7)
    assert summary.days[-1].day == date(2026, 1, 5)
    assert first_day(NOW, "Europe/Berlin") == date(2025, 12, 7)
    # Local midnight in Berlin is 23:00 UTC the day before.
    assert window_start(NOW, "Europe/Berlin") == datetime(2025, 12, 6, 23, 0, tzinfo=UTC)


def test_incidents_are_counted_on_the_viewers_local_day() -> None:
    rows = [
        (at(4, 22, 30), None, None),  # 23:30 in Berlin: Sunday the 4th
        (at(4, 23, 30), None, None),  # 00:30 in Berlin: Monday the 5th
        (at(5, 9), None, None),
    ]
    assert counts(summarize(rows, NOW, "Europe/Berlin")) == {
        date(2026, 1, 4): 1,
        date(2026, 1, 5): 2,
    }
    assert counts(summarize(rows, NOW, "UTC")) == {date(2026, 1, 4): 2, date(2026, 1, 5): 1}


def test_incidents_before_the_window_or_after_now_are_left_out() -> None:
    rows = [
        (at(6, 22, month=12), None, None),  # 23:00 on 6 Dec in Berlin: the day before
        (at(6, 23, month=12), None, None),  # midnight of 7 Dec in Berlin: the first day
        (NOW + timedelta(minutes=1), None, None),  # a clock ahead of ours
    ]
    summary = summarize(rows, NOW, "Europe/Berlin")
    assert counts(summary) == {date(2025, 12, 7): 1}
    assert summary.opened == 1


def test_a_day_with_a_daylight_saving_change_is_one_bar() -> None:
    # Berlin springs forward on Sunday 29 March 2026: a 23-hour day.
    now = datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    rows = [
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), None, None),  # 00:00 CET on the 29th
        (datetime(2026, 3, 29, 21, 59, tzinfo=UTC), None, None),  # 23:59 CEST on the 29th
        (datetime(2026, 3, 29, 22, 0, tzinfo=UTC), None, None),  # 00:00 CEST on the 30th
    ]
    summary = summarize(rows, now, "Europe/Berlin")
    assert counts(summary) == {date(2026, 3, 29): 2, date(2026, 3, 30): 1}
    assert len(summary.days) == 30


def test_the_medians_are_over_the_acknowledged_and_the_resolved() -> None:
    opened = at(5, 8)
    rows = [
        (opened, opened + timedelta(minutes=2), opened + timedelta(hours=1)),
        (opened, opened + timedelta(minutes=4), None),
        (opened, None, opened + timedelta(hours=3)),  # resolved without an acknowledgement
        (opened, opened + timedelta(minutes=30), opened + timedelta(hours=2)),
        (opened, None, None),
    ]
    summary = summarize(rows, NOW, "UTC")
    assert (summary.opened, summary.acknowledged, summary.resolved) == (5, 3, 3)
    assert summary.median_ack == timedelta(minutes=4)
    assert summary.median_resolve == timedelta(hours=2)


def test_the_medians_leave_out_incidents_outside_the_window() -> None:
    old = at(1, 8, month=12)
    rows = [(old, old + timedelta(hours=5), old + timedelta(hours=9)), (at(5, 8), None, None)]
    summary = summarize(rows, NOW, "UTC")
    assert (summary.median_ack, summary.median_resolve) == (None, None)


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        ([], None),  # nothing to take the median of
        ([5], 5),  # one value is its own median
        ([9, 1, 5], 5),  # odd count: the middle once sorted
        ([1, 2, 4, 10], 3),  # even count: the mean of the middle two
    ],
)
def test_median(minutes: list[int], expected: int | None) -> None:
    found = median([timedelta(minutes=m) for m in minutes])
    assert found == (None if expected is None else timedelta(minutes=expected))


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "none"),  # no median
        (timedelta(seconds=42.4), "42 s"),  # rounded to the second
        (timedelta(minutes=4, seconds=30), "4 min 30 s"),
        (timedelta(minutes=7), "7 min"),  # no zero seconds
        (timedelta(hours=2, minutes=5, seconds=40), "2 h 5 min"),  # to the minute past an hour
        (timedelta(days=3, hours=4, minutes=59), "3 d 4 h"),  # to the hour past a day
        (timedelta(days=1), "1 d"),
    ],
)
def test_duration_words(value: timedelta | None, words: str) -> None:
    assert duration_words(value) == words


@pytest.mark.parametrize(
    ("highest", "top"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, 200)],
)
def test_the_value_axis_ends_at_a_round_number(highest: int, top: int) -> None:
    assert axis_top(highest) == top


def test_the_chart_has_a_bar_per_day_as_tall_as_its_count() -> None:
    rows = [(at(5, 8), at(5, 8, 4), None)] * 4 + [(at(3, 8), None, None)] * 2
    picture = chart(summarize(rows, NOW, "UTC"))
    assert len(picture.bars) == 30
    today, two_days_ago = picture.bars[-1], picture.bars[-3]
    assert (today.opened, two_days_ago.opened) == (4, 2)
    assert today.height == pytest.approx(2 * two_days_ago.height)
    assert today.y + today.height == pytest.approx(picture.bottom)
    assert picture.bars[-2].height == 0
    # The axis goes to 5: four incidents fill four fifths of the plot.
    assert [t.value for t in picture.ticks] == [0, 5]
    assert today.height == pytest.approx((picture.bottom - picture.top) * 4 / 5)
    assert (picture.median_ack, picture.median_resolve) == ("4 min", "none")


def test_the_bars_stay_inside_the_plot_in_order() -> None:
    picture = chart(summarize([(at(5, 8), None, None)], NOW, "UTC"))
    xs = [b.x for b in picture.bars]
    assert xs == sorted(xs)
    assert picture.bars[0].x >= picture.left
    assert picture.bars[-1].x + picture.bars[-1].width <= picture.right
    assert all(b.width > 0 for b in picture.bars)


def test_the_day_axis_labels_today_and_every_seventh_day_before() -> None:
    picture = chart(summarize([], NOW, "UTC"))
    labelled = [(b.day, b.label) for b in picture.bars if b.label]
    assert labelled[-1] == (date(2026, 1, 5), "5 Jan")
    assert [d for d, _ in labelled] == [
        date(2025, 12, 8),
        date(2025, 12, 15),
        date(2025, 12, 22),
        date(2025, 12, 29),
        date(2026, 1, 5),
    ]


def test_an_even_axis_has_a_middle_tick() -> None:
    rows = [(at(5, 8), None, None)] * 10
    assert [t.value for t in chart(summarize(rows, NOW, "UTC")).ticks] == [0, 5, 10]
