"""A schedule over some days as a picture's geometry: lanes of segments and day columns in
a fixed SVG viewBox. Pure: the page's template only draws what this returns.

Time runs left to right in proportion to real elapsed time, so a day's column is as wide as
the day is long: the day clocks go forward (23 hours) is narrower than its neighbours, the
day they go back (25 hours) wider. Days begin at local midnight in the schedule's zone.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from oncall.schedules.overrides import Override
from oncall.schedules.rotation import Shift, localize

WIDTH = 1000.0  # the viewBox's width: the whole span of time
AXIS_HEIGHT = 44.0  # day names, and a day's length when it is not 24 hours
LANE_TITLE = 20.0  # each lane's title sits above its bar
LANE_HEIGHT = 30.0
LANE_GAP = 10.0
LEGEND_HEIGHT = 34.0
FONT_SIZE = 13.0
# A generous average glyph width at FONT_SIZE: a label is drawn only where it surely fits.
CHAR_WIDTH = 7.8
PADDING = 4.0
TONES = 8  # how many fills persons cycle through (the stylesheet has one per tone)
NORMAL_DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Day:
    date: date
    start: datetime
    end: datetime
    x: float
    width: float
    hours: float  # its real length: 23 or 25 on the days the clocks change
    label: str  # "Sun 28"
    long: str  # "Sunday 28 March 2027"
    note: str  # "23 h" on a day that is not 24 hours long, else ""


@dataclass(frozen=True)
class Segment:
    user: str | None  # None: nobody is on call (final lane only)
    name: str  # the person's name as shown, "nobody" for a gap
    start: datetime
    end: datetime
    x: float
    width: float
    label: str  # the text drawn inside the bar, "" where none fits
    override: bool  # put there by an override (final lane only)
    tone: int  # 0..TONES-1, the same for one person across lanes; -1 for a gap


@dataclass(frozen=True)
class Lane:
    title: str
    final: bool
    title_y: float  # the baseline of the lane's title
    y: float  # the top of its bar
    height: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Picture:
    start: datetime
    end: datetime
    time_zone: str
    width: float
    height: float
    days: tuple[Day, ...]
    lanes: tuple[Lane, ...]
    legend_y: float
    now_x: float | None  # where `now` is, when it falls inside the span


def window(at: datetime, days: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the instants of local midnight of `at`'s day in `zone` and of `days` days later
    (a local midnight that does not exist is the first instant after it)."""
    first = at.astimezone(zone).date()
    return _midnight(first, zone), _midnight(first + timedelta(days=days), zone)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return localize(datetime.combine(day, time()), zone)


def draw(
    layers: Sequence[tuple[str, Sequence[Shift]]],
    final: Sequence[Shift],
    overrides: Sequence[Override],
    start: datetime,
    days: int,
    time_zone: str,
    *,
    final_title: str = "Final: layers and overrides",
    names: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Picture:
    """Return the picture of `days` local days from `start` in `time_zone`: one lane per
    (title, shifts) of `layers`, then the final lane (`final`, the shifts after layers and
    overrides, with its gaps shown as nobody and the spans `overrides` cover marked).

    `start` is normally a local midnight (see `window`); when it is not, the first day is
    the rest of that day. `names` maps a user to the name shown (default: the user).
    """
    zone = ZoneInfo(time_zone)
    shown = dict(names or {})
    first = start.astimezone(zone).date()
    end = _midnight(first + timedelta(days=days), zone)
    if end <= start:
        raise ValueError("the picture needs at least one day after start")
    scale = WIDTH / (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return round((min(max(moment, start), end) - start).total_seconds() * scale, 3)

    day_list = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        begin = max(_midnight(day, zone), start)
        finish = _midnight(day + timedelta(days=1), zone)
        length = finish - begin
        hours = length.total_seconds() / 3600
        full = begin == _midnight(day, zone)
        day_list.append(
            Day(
                day,
                begin,
                finish,
                x_of(begin),
                round(x_of(finish) - x_of(begin), 3),
                hours,
                f"{day:%a} {day.day}",
                f"{day:%A} {day.day} {day:%B} {day.year}",
                f"{hours:g} h" if full and length != NORMAL_DAY else "",
            )
        )

    people = sorted({s.user for s in final} | {s.user for _, found in layers for s in found})
    tones = {user: index % TONES for index, user in enumerate(people)}

    def segment(user: str | None, begin: datetime, finish: datetime, override: bool) -> Segment:
        x, width = x_of(begin), round(x_of(finish) - x_of(begin), 3)
        name = "nobody" if user is None else shown.get(user, user)
        candidates = [name] if user is None else [name, user]
        if override:
            candidates = [f"{c} (override)" for c in candidates] + candidates
        label = next((c for c in candidates if _fits(c, width)), "")
        tone = -1 if user is None else tones[user]
        return Segment(user, name, begin, finish, x, width, label, override, tone)

    lanes = []
    y = AXIS_HEIGHT
    for title, found in layers:
        segments = tuple(
            segment(s.user, max(s.start, start), min(s.end, end), False)
            for s in found
            if s.end > start and s.start < end
        )
        lanes.append(Lane(title, False, y + LANE_TITLE - 6, y + LANE_TITLE, LANE_HEIGHT, segments))
        y += LANE_TITLE + LANE_HEIGHT + LANE_GAP
    final_segments = tuple(
        segment(user, begin, finish, override)
        for user, begin, finish, override in _final_spans(final, overrides, start, end)
    )
    lanes.append(
        Lane(final_title, True, y + LANE_TITLE - 6, y + LANE_TITLE, LANE_HEIGHT, final_segments)
    )
    y += LANE_TITLE + LANE_HEIGHT + LANE_GAP
    now_x = x_of(now) if now is not None and start <= now < end else None
    return Picture(
        start,
        end,
        time_zone,
        WIDTH,
        y + LEGEND_HEIGHT,
        tuple(day_list),
        tuple(lanes),
        y + LEGEND_HEIGHT / 2,
        now_x,
    )


def _fits(text: str, width: float) -> bool:
    return len(text) * CHAR_WIDTH + 2 * PADDING <= width


def _final_spans(
    final: Sequence[Shift], overrides: Sequence[Override], start: datetime, end: datetime
) -> list[tuple[str | None, datetime, datetime, bool]]:
    """Return (user or None for nobody, start, end, whether an override covers it) spans
    covering [start, end): each shift cut where an override begins or ends."""
    spans: list[tuple[str | None, datetime, datetime, bool]] = []
    cursor = start
    for shift in sorted(final, key=lambda s: s.start):
        begin, finish = max(shift.start, start), min(shift.end, end)
        if finish <= begin:
            continue
        if begin > cursor:
            spans.append((None, cursor, begin, False))
        cuts = sorted(
            {begin, finish} | {p for o in overrides for p in (o.start, o.end) if begin < p < finish}
        )
        for a, b in itertools.pairwise(cuts):
            covered = any(o.start <= a < o.end for o in overrides)
            last = spans[-1] if spans else None
            if last and last[0] == shift.user and last[2] == a and last[3] == covered:
                spans[-1] = (shift.user, last[1], b, covered)
            else:
                spans.append((shift.user, a, b, covered))
        cursor = max(cursor, finish)
    if cursor < end:
        spans.append((None, cursor, end, False))
    return spans
