"""The /simulate page (a form, its answer as tables and a timeline drawn on the server)
and the timeline's pure geometry (oncall.simulate.picture)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from oncall.simulate import picture
from oncall.simulate.picture import PageAt, StepAt

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # Monday 13:00 in Berlin


def page_at(minutes: float, user: str = "alice", channel: str = "email") -> PageAt:
    return PageAt(START + timedelta(minutes=minutes), user, f"{channel}:{user}", channel, 1, 0)


# The geometry.


def test_marks_sit_in_proportion_to_the_time_since_the_start():
    drawn = picture.draw(
        START,
        2,
        "Europe/Berlin",
        [StepAt(START, 1, 0), StepAt(START + timedelta(minutes=30), 2, 0)],
        [page_at(0), page_at(60, "bob"), page_at(120, "carol")],
    )
    steps, *people = drawn.rows
    assert [m.x for m in steps.marks] == [0.0, 250.0]
    assert [m.label for m in steps.marks] == ["L1", "L2"]
    assert [(r.user, [m.x for m in r.marks]) for r in people] == [
        ("alice", [0.0]),
        ("bob", [500.0]),
        ("carol", [1000.0]),
    ]
    # The label of the page at the right edge is drawn left of its mark, inside.
    (last,) = people[-1].marks
    assert last.anchor == "end" and last.label_x < last.x


def test_ticks_are_local_quarter_hours_for_two_hours():
    drawn = picture.draw(START, 2, "Europe/Berlin", [], [])
    assert [t.label for t in drawn.ticks] == [
        "13:00", "13:15", "13:30", "13:45", "14:00", "14:15", "14:30", "14:45", "15:00",
    ]  # fmt: skip
    assert [t.x for t in drawn.ticks] == [125.0 * n for n in range(9)]
    assert drawn.ticks[0].day == "Mon 5" and all(t.day == "" for t in drawn.ticks[1:])
    assert drawn.changes == ()


def test_on_the_spring_day_the_skipped_hour_takes_no_room():
    # 2027-03-28 00:00 to 06:00 in Berlin is five real hours: 02:00 to 03:00 never happens.
    start = datetime(2027, 3, 27, 23, 0, tzinfo=UTC)
    drawn = picture.draw(start, 5, "Europe/Berlin", [], [page_at(0)])
    hourly = [(t.label, t.x) for t in drawn.ticks if t.label.endswith(("00", "CEST"))]
    assert hourly == [
        ("00:00", 0.0),
        ("01:00", 200.0),
        ("03:00 CEST", 400.0),
        ("04:00", 600.0),
        ("05:00", 800.0),
        ("06:00", 1000.0),
    ]
    (change,) = drawn.changes
    assert change.at == datetime(2027, 3, 28, 1, 0, tzinfo=UTC) and change.x == 400.0
    assert change.label == "clocks go forward 1 h (CET to CEST)"


def test_on_the_autumn_day_the_repeated_hour_is_drawn_twice():
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST
    drawn = picture.draw(start, 4, "Europe/Berlin", [], [])
    hourly = [(t.label, t.x) for t in drawn.ticks if ":00" in t.label]
    assert hourly == [
        ("01:00", 0.0),
        ("02:00", 250.0),
        ("02:00 CET", 500.0),
        ("03:00", 750.0),
        ("04:00", 1000.0),
    ]
    (change,) = drawn.changes
    assert change.label == "clocks go back 1 h (CEST to CET)" and change.x == 500.0


def test_a_week_has_a_tick_each_local_midnight():
    start = datetime(2026, 1, 4, 23, 0, tzinfo=UTC)  # Monday 00:00 in Berlin
    drawn = picture.draw(start, 168, "Europe/Berlin", [], [])
    assert [t.label for t in drawn.ticks] == [
        "Mon 5", "Tue 6", "Wed 7", "Thu 8", "Fri 9", "Sat 10", "Sun 11", "Mon 12",
    ]  # fmt: skip
    assert drawn.ticks[1].x == pytest.approx(1000 / 7, abs=0.001)


def test_pages_at_the_same_time_stack_instead_of_overlapping():
    drawn = picture.draw(
        START,
        2,
        "UTC",
        [],
        [page_at(0, channel="email"), page_at(0, channel="sms"), page_at(60, channel="webhook")],
    )
    (row,) = drawn.rows[1:]
    assert [(m.label, m.x) for m in row.marks] == [("email", 0), ("sms", 0), ("webhook", 500)]
    first, second, third = (m.y for m in row.marks)
    assert second - first == picture.TRACK and third == first  # far enough: the first track
    assert row.height == 2 * picture.TRACK
    # Rows follow each other without overlapping.
    tops = [(r.y, r.y + r.height) for r in drawn.rows]
    assert all(end <= following for (_, end), (following, _) in itertools.pairwise(tops))
    assert drawn.bottom <= drawn.height


def test_a_row_is_titled_with_the_shown_name_and_the_user():
    drawn = picture.draw(START, 1, "UTC", [], [page_at(5)], names={"alice": "Alice Example"})
    assert [r.title for r in drawn.rows] == ["Escalation steps", "Alice Example (alice)"]


def test_acknowledgement_and_maintenance_are_placed_on_the_axis():
    drawn = picture.draw(
        START,
        2,
        "UTC",
        [],
        [],
        acknowledged=START + timedelta(minutes=12),
        held_until=START + timedelta(minutes=90),
        held_by="db upgrade",
    )
    assert drawn.acknowledged_x == 100.0
    assert drawn.held is not None and (drawn.held.x, drawn.held.width) == (0.0, 750.0)
    held_on = picture.draw(START, 2, "UTC", [], [], held_until=None, held_by="forever")
    assert held_on.held is not None and held_on.held.width == 1000.0


def test_a_span_that_is_not_positive_or_a_naive_start_is_refused():
    with pytest.raises(ValueError):
        picture.draw(START, 0, "UTC", [], [])
    with pytest.raises(ValueError):
        picture.draw(START.replace(tzinfo=None), 2, "UTC", [], [])
