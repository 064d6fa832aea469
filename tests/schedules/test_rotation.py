"""Who is on call, exactly, across the 2026 and 2027 daylight-saving changes; properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oncall.schedules.overrides import Override
from oncall.schedules.rotation import Layer, Restriction, Schedule, localize, on_call, shifts

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
# (zone, local date of the change) for the 2026 and 2027 changes in both zones
CHANGES = [
    (BERLIN, "2026-03-29"),
    (BERLIN, "2026-10-25"),
    (BERLIN, "2027-03-28"),
    (BERLIN, "2027-10-31"),
    (NEW_YORK, "2026-03-08"),
    (NEW_YORK, "2026-11-01"),
    (NEW_YORK, "2027-03-14"),
    (NEW_YORK, "2027-11-07"),
]


def daily(zone: str, start: str, at: str = "09:00", members=("alice", "bob", "carol")):
    handoff = datetime.fromisoformat(f"{start} {at}") - timedelta(days=3)
    return Schedule("s", zone, (Layer(tuple(members), timedelta(days=1), handoff),))


@pytest.mark.parametrize(("zone", "day"), CHANGES)
def test_a_daily_handoff_stays_at_its_local_time_across_the_change(zone, day):
    schedule = daily(zone, day)
    start = datetime.fromisoformat(f"{day} 00:00").replace(tzinfo=ZoneInfo(zone)) - timedelta(
        days=2
    )
    found = shifts(schedule, [], start.astimezone(UTC), (start + timedelta(days=5)).astimezone(UTC))
    inner = found[1:]  # the first shift is cut by the window's start
    assert all(s.start.astimezone(ZoneInfo(zone)).time() == time(9) for s in inner)
    # no gap and no overlap: each shift ends where the next begins
    assert all(a.end == b.start for a, b in itertools.pairwise(found))
    lengths = {(s.end - s.start) for s in inner[:-1]}
    assert lengths <= {timedelta(hours=23), timedelta(hours=24), timedelta(hours=25)}
    assert len(lengths) == 2  # the day of the change is an hour shorter or longer


@pytest.mark.parametrize(
    ("zone", "local", "expected_utc"),
    [
        (BERLIN, "2026-03-29 02:30", "2026-03-29 01:00"),  # in the spring gap: first valid
        (BERLIN, "2026-10-25 02:30", "2026-10-25 00:30"),  # ambiguous: first occurrence
        (NEW_YORK, "2026-03-08 02:15", "2026-03-08 07:00"),
        (NEW_YORK, "2026-11-01 01:30", "2026-11-01 05:30"),
        (BERLIN, "2026-07-01 12:00", "2026-07-01 10:00"),
    ],
)
def test_local_times_in_gaps_and_overlaps(zone, local, expected_utc):
    instant = localize(datetime.fromisoformat(local), ZoneInfo(zone))
    assert instant == datetime.fromisoformat(expected_utc).replace(tzinfo=UTC)


def test_a_handoff_in_the_spring_gap_moves_to_the_first_valid_instant():
    schedule = daily(BERLIN, "2026-03-29", at="02:30")
    at = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the first valid instant
    before = on_call(schedule, [], at - timedelta(seconds=1))
    assert on_call(schedule, [], at) != before


def test_restrictions_and_precedence_of_later_layers():
    nights = Restriction(frozenset(range(5)), time(18), time(8))
    schedule = Schedule(
        "s",
        BERLIN,
        (
            Layer(("alice",), timedelta(weeks=1), datetime(2026, 11, 30, 9)),
            Layer(("dave",), timedelta(days=1), datetime(2026, 11, 30, 18), nights),
        ),
    )
    tz = ZoneInfo(BERLIN)
    assert on_call(schedule, [], datetime(2026, 12, 1, 12, tzinfo=tz)) == "alice"
    assert on_call(schedule, [], datetime(2026, 12, 1, 22, tzinfo=tz)) == "dave"
    assert on_call(schedule, [], datetime(2026, 12, 5, 22, tzinfo=tz)) == "alice"  # Saturday
    assert on_call(schedule, [], datetime(2026, 11, 30, 8, tzinfo=tz)) is None  # not started


def test_an_override_wins():
    schedule = daily(BERLIN, "2026-12-01")
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    override = Override("zoe", at - timedelta(hours=1), at + timedelta(hours=1))
    assert on_call(schedule, [override], at) == "zoe"
    assert on_call(schedule, [override], at + timedelta(hours=1)) != "zoe"


ZONES = st.sampled_from([BERLIN, NEW_YORK, "UTC", "Australia/Lord_Howe", "Asia/Kolkata"])
START = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def schedules(draw):
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        members = tuple(
            draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4))
        )
        rotation = timedelta(hours=draw(st.sampled_from([1, 6, 8, 12, 24, 48, 168])))
        handoff = datetime(2026, 1, 1) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
        restrict = None
        if draw(st.booleans()):
            restrict = Restriction(
                frozenset(draw(st.sets(st.integers(0, 6), min_size=1))),
                time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30]))),
                time(draw(st.integers(0, 23)), 15),
            )
        layers.append(Layer(members, rotation, handoff, restrict))
    return Schedule("s", draw(ZONES), tuple(layers))


overrides = st.lists(
    st.builds(
        lambda user, start, hours: Override(
            user, START + timedelta(minutes=start), START + timedelta(minutes=start, hours=hours)
        ),
        st.sampled_from(["x", "y"]),
        st.integers(0, 60 * 24 * 60),
        st.integers(1, 72),
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(schedules(), overrides, st.integers(0, 60 * 24 * 50), st.integers(1, 60 * 24 * 10))
def test_on_call_agrees_with_shifts_and_shifts_are_contiguous(schedule, overs, offset, span):
    start = START + timedelta(minutes=offset)
    end = start + timedelta(minutes=span)
    found = shifts(schedule, overs, start, end)
    for shift in found:
        assert start <= shift.start < shift.end <= end
        for probe in (
            shift.start,
            shift.start + (shift.end - shift.start) / 2,
            shift.end - timedelta(seconds=1),
        ):
            assert on_call(schedule, overs, probe) == shift.user
    for earlier, later in itertools.pairwise(found):
        assert earlier.end <= later.start  # ordered, no overlap
        if earlier.end < later.start:  # a gap: nobody on call inside it
            assert on_call(schedule, overs, earlier.end) is None
        else:
            assert earlier.user != later.user  # merged otherwise


@settings(max_examples=60, deadline=None)
@given(schedules(), overrides.filter(bool), st.data())
def test_an_override_always_wins(schedule, overs, data):
    chosen = data.draw(st.sampled_from(overs))
    at = chosen.start + (chosen.end - chosen.start) * data.draw(st.floats(0, 0.999))
    covering = [o for o in overs if o.start <= at < o.end]
    assert chosen in covering
    assert on_call(schedule, overs, at) == covering[-1].user  # the latest override wins
    assert any(
        s.user == covering[-1].user and s.start <= at < s.end
        for s in shifts(schedule, overs, at - timedelta(hours=1), at + timedelta(hours=1))
    )
