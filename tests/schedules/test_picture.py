"""The schedule picture's geometry: day columns as long as the days, lanes, overrides marked."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from oncall.schedules.overrides import Override
from oncall.schedules.picture import WIDTH, draw, window
from oncall.schedules.rotation import Layer, Schedule, Shift, shifts

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str) -> datetime:
    """Return the instant of a Berlin wall-clock time `YYYY-MM-DD HH:MM`."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC)


def blank(start: datetime, days: int):
    return draw([], [], [], start, days, "Europe/Berlin")


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        ("2027-03-28", 23),  # spring forward: 02:00 does not happen
        ("2026-10-25", 25),  # autumn: 02:00 to 03:00 happens twice
        ("2026-07-01", 24),  # an ordinary summer day
    ],
)
def test_a_days_column_is_as_wide_as_the_day_is_long(day, hours):
    start, _ = window(local(f"{day} 12:00") - timedelta(days=1), 3, BERLIN)
    picture = blank(start, 3)
    before, changed, after = picture.days
    assert (before.hours, changed.hours, after.hours) == (24, hours, 24)
    assert changed.width / before.width == pytest.approx(hours / 24, abs=1e-4)
    assert changed.note == ("" if hours == 24 else f"{hours} h")
    assert changed.label == datetime.fromisoformat(day).strftime("%a ") + str(int(day[-2:]))


def test_fourteen_days_over_the_spring_change_tile_the_width_in_proportion():
    start, end = window(local("2027-03-22 10:00"), 14, BERLIN)
    picture = blank(start, 14)
    assert picture.end == end and (end - start) == timedelta(hours=14 * 24 - 1)
    assert [d.hours for d in picture.days].count(23) == 1
    short = next(d for d in picture.days if d.hours == 23)
    assert short.date.isoformat() == "2027-03-28"
    assert short.width == pytest.approx(WIDTH * 23 / 335, abs=0.01)
    assert picture.days[0].x == 0
    assert picture.days[-1].x + picture.days[-1].width == pytest.approx(WIDTH)
    # each day begins at local midnight, where the one before it ends
    assert all(d.start.astimezone(BERLIN).time() == time(0) for d in picture.days)
    assert all(a.end == b.start for a, b in itertools.pairwise(picture.days))
    assert all(
        a.x + a.width == pytest.approx(b.x, abs=0.01) for a, b in itertools.pairwise(picture.days)
    )


def test_the_autumn_day_is_25_hours_in_a_fourteen_day_picture():
    start, _ = window(local("2026-10-19 08:00"), 14, BERLIN)
    picture = blank(start, 14)
    long = next(d for d in picture.days if d.date.isoformat() == "2026-10-25")
    assert long.hours == 25 and long.note == "25 h"
    assert long.width == pytest.approx(WIDTH * 25 / 337, abs=0.01)
    assert long.long == "Sunday 25 October 2026"


def test_the_window_runs_from_local_midnight_of_the_day():
    start, end = window(datetime(2026, 1, 5, 23, 30, tzinfo=UTC), 2, BERLIN)
    # 23:30 UTC is 00:30 on the 6th in Berlin
    assert start == local("2026-01-06 00:00") and end == local("2026-01-08 00:00")


def schedule_of_two_layers() -> Schedule:
    return Schedule(
        "primary",
        "Europe/Berlin",
        (
            Layer(("alice", "bob"), timedelta(days=1), datetime(2026, 1, 1, 9)),
            Layer(("carol",), timedelta(days=7), datetime(2026, 1, 10, 0)),
        ),
    )


def picture_of(schedule: Schedule, overrides: list[Override], start: datetime, days: int):
    end = start + timedelta(days=days)
    layers = [
        (f"Layer {i}", shifts(Schedule("x", schedule.time_zone, (layer,)), [], start, end))
        for i, layer in enumerate(schedule.layers, start=1)
    ]
    final = shifts(schedule, overrides, start, end)
    return draw(layers, final, overrides, start, days, schedule.time_zone)


def test_there_is_one_lane_per_layer_and_the_final_lane_last():
    start, _ = window(local("2026-01-05 12:00"), 7, BERLIN)
    picture = picture_of(schedule_of_two_layers(), [], start, 7)
    assert [(lane.title, lane.final) for lane in picture.lanes] == [
        ("Layer 1", False),
        ("Layer 2", False),
        ("Final: layers and overrides", True),
    ]
    assert picture.lanes[0].y < picture.lanes[1].y < picture.lanes[2].y < picture.legend_y
    assert picture.legend_y < picture.height
    first = picture.lanes[0].segments
    assert [s.user for s in first[:3]] == ["bob", "alice", "bob"]  # handoffs at 09:00
    assert first[1].start == local("2026-01-05 09:00")
    # the second layer starts on the 10th: before it the final lane is the first layer's
    final = picture.lanes[2].segments
    assert final[-1].user == "carol" and final[-1].start == local("2026-01-10 00:00")


def test_an_override_is_marked_and_cuts_the_final_shift_where_it_begins_and_ends():
    start, _ = window(local("2026-01-05 12:00"), 3, BERLIN)
    override = Override("carol", local("2026-01-05 12:00"), local("2026-01-05 18:00"))
    picture = picture_of(schedule_of_two_layers(), [override], start, 3)
    final = picture.lanes[-1].segments
    marked = [s for s in final if s.override]
    assert [(s.user, s.start, s.end) for s in marked] == [("carol", override.start, override.end)]
    before, after = final[final.index(marked[0]) - 1], final[final.index(marked[0]) + 1]
    assert (before.user, before.end) == ("alice", override.start)
    assert (after.user, after.start, after.override) == ("alice", override.end, False)
    # the layers' lanes show no override
    assert not any(s.override for lane in picture.lanes[:-1] for s in lane.segments)


def test_an_override_of_the_person_already_on_call_is_still_marked():
    start, _ = window(local("2026-01-05 12:00"), 2, BERLIN)
    override = Override("alice", local("2026-01-05 12:00"), local("2026-01-05 14:00"))
    final = picture_of(schedule_of_two_layers(), [override], start, 2).lanes[-1].segments
    assert [(s.user, s.override) for s in final[:4]] == [
        ("bob", False),
        ("alice", False),
        ("alice", True),
        ("alice", False),
    ]


def test_a_span_with_nobody_on_call_is_shown_as_nobody_in_the_final_lane():
    start, end = window(local("2026-01-05 12:00"), 2, BERLIN)
    found = [Shift("alice", local("2026-01-05 06:00"), local("2026-01-06 06:00"))]
    picture = draw([("Layer 1", found)], found, [], start, 2, "Europe/Berlin")
    final = picture.lanes[-1].segments
    assert [(s.user, s.name, s.tone) for s in final] == [
        (None, "nobody", -1),
        ("alice", "alice", 0),
        (None, "nobody", -1),
    ]
    assert (final[0].start, final[-1].end) == (start, end)
    assert sum(s.width for s in final) == pytest.approx(WIDTH)
    # a layer's lane leaves its gaps empty
    assert [s.user for s in picture.lanes[0].segments] == ["alice"]


def test_segments_are_cut_to_the_window_and_placed_in_proportion():
    start, _ = window(local("2026-01-05 12:00"), 2, BERLIN)
    found = [Shift("bob", start - timedelta(hours=5), start + timedelta(hours=12))]
    (segment,) = draw([("L", found)], found, [], start, 2, "Europe/Berlin").lanes[0].segments
    assert (segment.start, segment.x) == (start, 0)
    assert segment.width == pytest.approx(WIDTH / 4)


def test_a_name_is_drawn_where_it_fits_and_a_shorter_one_or_none_where_it_does_not():
    start, _ = window(local("2026-01-05 12:00"), 14, BERLIN)
    names = {"alice": "Alice Example-Longname"}
    found = [
        Shift("alice", start, start + timedelta(days=7)),  # wide: the full name
        Shift("alice", start + timedelta(days=7), start + timedelta(hours=7 * 24 + 20)),
        Shift("alice", start + timedelta(days=8), start + timedelta(hours=8 * 24 + 1)),
    ]
    override = [Override("alice", start, start + timedelta(days=7))]
    picture = draw([("L", found)], found, override, start, 14, "Europe/Berlin", names=names)
    wide, middle, narrow = picture.lanes[0].segments
    assert (wide.label, middle.label, narrow.label) == ("Alice Example-Longname", "alice", "")
    assert narrow.name == "Alice Example-Longname"  # its tooltip still names the person
    final = [s for s in picture.lanes[-1].segments if s.user]
    assert final[0].label == "Alice Example-Longname (override)"


def test_a_person_keeps_one_tone_across_lanes():
    start, _ = window(local("2026-01-05 12:00"), 7, BERLIN)
    picture = picture_of(schedule_of_two_layers(), [], start, 7)
    tones: dict[str, set[int]] = {}
    for lane in picture.lanes:
        for s in lane.segments:
            tones.setdefault(s.user, set()).add(s.tone)
    assert all(len(found) == 1 for found in tones.values())
    assert len({next(iter(t)) for t in tones.values()}) == len(tones)


def test_now_is_marked_only_inside_the_span():
    start, end = window(local("2026-01-05 12:00"), 1, BERLIN)
    inside = draw([], [], [], start, 1, "Europe/Berlin", now=start + timedelta(hours=6))
    assert inside.now_x == pytest.approx(WIDTH / 4)
    assert draw([], [], [], start, 1, "Europe/Berlin", now=end).now_x is None
