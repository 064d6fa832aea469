"""A simulation's timeline as a picture's geometry: a time axis over the simulated hours
with ticks in the viewer's time zone, a row of escalation steps, and a row per user with
a mark per page. Pure: the page's template only draws what this returns (and escapes
every label).

Time runs left to right in proportion to real elapsed time: across a daylight-saving
change the ticks keep their local wall-clock times (01:00, 03:00 on the spring day), so
the hour the clocks skip takes no room and the hour they repeat takes two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

WIDTH = 1000.0  # the width of the whole simulated span
MARGIN = 8.0  # the viewBox reaches this far past each end: a mark at an edge is whole
AXIS_HEIGHT = 44.0  # tick labels, and the day under a tick where the date changes
ROW_TITLE = 20.0  # each row's title sits above its marks
TRACK = 24.0  # one line of marks and labels; a busy row stacks several
ROW_GAP = 8.0
FOOTER = 24.0  # the clocks' changes, said in words under the rows
FONT_SIZE = 13.0
# A generous average glyph width at FONT_SIZE: labels are packed so that none overlap.
CHAR_WIDTH = 7.8
MARK = 5.0  # half a mark's width
LABEL_GAP = 3.0  # between a mark and its label, and between neighbours on a track
# Tick spacings tried in turn, in minutes: the first that gives at most MAX_TICKS ticks.
TICK_MINUTES = (15, 30, 60, 120, 180, 360, 720, 1440)
MAX_TICKS = 12
QUARTER = timedelta(minutes=15)  # every offset in use today is a whole quarter-hour


@dataclass(frozen=True)
class StepAt:
    """An escalation step of the simulation: when it would run."""

    at: datetime
    level: int
    repeat: int  # 0 for the first pass


@dataclass(frozen=True)
class PageAt:
    """A page of the simulation: when, to whom, on what."""

    at: datetime
    user: str
    contact: str
    channel: str
    level: int
    repeat: int
    digest: bool = False  # the storm guard's digest instead of a page of its own


@dataclass(frozen=True)
class Tick:
    at: datetime
    x: float
    label: str  # "14:00" (with the zone's abbreviation after a change: "02:00 CET")
    day: str  # "Mon 5" under the first tick and wherever the local date changes, else ""
    label_x: float
    anchor: str  # "start", or "end" for a label that would run past the right edge


@dataclass(frozen=True)
class Change:
    """An instant in the span when the viewer's clocks change."""

    at: datetime
    x: float
    label: str  # "clocks go forward 1 h (CET to CEST)"
    label_x: float
    anchor: str  # the label's text-anchor: "start", or "end" near the right edge


@dataclass(frozen=True)
class Mark:
    at: datetime
    x: float
    y: float  # the middle of its track
    label: str  # what is drawn beside the mark: "L2", "email"
    label_x: float
    anchor: str  # "start" (the label right of the mark) or "end" (left of it)
    detail: str  # the mark in words, without its time: the template adds it


@dataclass(frozen=True)
class Row:
    title: str
    user: str | None  # None: the steps' row
    title_y: float  # the baseline of the row's title
    y: float  # the top of its first track
    height: float
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class Band:
    """A span drawn behind the rows (a maintenance window holding the alert)."""

    x: float
    width: float
    label: str


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    time_zone: str
    width: float
    height: float
    view_x: float  # the viewBox's left edge and width: the span and a margin each side
    view_width: float
    ticks: tuple[Tick, ...]
    changes: tuple[Change, ...]
    rows: tuple[Row, ...]  # the steps' row first, then one per paged user
    top: float  # where the rows begin (under the axis)
    bottom: float  # where they end
    footer_y: float  # the baseline of the changes' labels
    acknowledged_x: float | None  # where the simulated acknowledgement falls, if inside
    held: Band | None


def draw(
    start: datetime,
    hours: float,
    time_zone: str,
    steps: Sequence[StepAt],
    pages: Sequence[PageAt],
    *,
    names: Mapping[str, str] | None = None,
    acknowledged: datetime | None = None,
    held_until: datetime | None = None,
    held_by: str | None = None,
) -> Timeline:
    """Return the timeline of `hours` hours from `start` (aware) with ticks in `time_zone`:
    a row of `steps`, then a row per user of `pages` (in the order of their first page).

    `names` maps a user to the name shown (default: the user). `acknowledged` is when the
    simulated acknowledgement happens; `held_by` names a maintenance window that holds
    the alert until `held_until` (None: past the span). Raises ValueError for a span that
    is not positive or a naive `start`.
    """
    if start.tzinfo is None:
        raise ValueError("start must be aware")
    if hours <= 0:
        raise ValueError("hours must be positive")
    zone = ZoneInfo(time_zone)
    end = start + timedelta(hours=hours)
    scale = WIDTH / (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return round((min(max(moment, start), end) - start).total_seconds() * scale, 3)

    shown = dict(names or {})
    ticks = _ticks(start, end, zone, x_of)
    y = AXIS_HEIGHT
    rows = []
    step_marks = [
        (s.at, _step_label(s), f"Level {s.level}, {_pass(s.repeat)}")
        for s in sorted(steps, key=lambda s: (s.at, s.level, s.repeat))
    ]
    row, y = _row("Escalation steps", None, step_marks, y, x_of)
    rows.append(row)
    by_user: dict[str, list[PageAt]] = {}
    for p in sorted(pages, key=lambda p: (p.at, p.level, p.repeat, p.user, p.contact)):
        by_user.setdefault(p.user, []).append(p)
    for user, paged in by_user.items():
        name = shown.get(user, user)
        title = name if name == user else f"{name} ({user})"
        marks = [(p.at, _page_label(p), _page_detail(p)) for p in paged]
        row, y = _row(title, user, marks, y, x_of)
        rows.append(row)
    bottom = y - ROW_GAP
    changes = tuple(
        Change(at, x_of(at), label, *_label_place(x_of(at), label))
        for at, label in _changes(start, end, zone)
    )
    held = None
    if held_by is not None:
        until = end if held_until is None else min(held_until, end)
        if until > start:
            held = Band(0.0, x_of(until), f"held by maintenance window {held_by}")
    acknowledged_x = None
    if acknowledged is not None and start <= acknowledged <= end:
        acknowledged_x = x_of(acknowledged)
    height = bottom + (FOOTER if changes else 0.0) + ROW_GAP
    return Timeline(
        start=start,
        end=end,
        time_zone=time_zone,
        width=WIDTH,
        height=height,
        view_x=-MARGIN,
        view_width=WIDTH + 2 * MARGIN,
        ticks=ticks,
        changes=changes,
        rows=tuple(rows),
        top=AXIS_HEIGHT,
        bottom=bottom,
        footer_y=bottom + FOOTER - 7,
        acknowledged_x=acknowledged_x,
        held=held,
    )


def _pass(repeat: int) -> str:
    return "first pass" if repeat == 0 else f"repeat {repeat}"


def _step_label(step: StepAt) -> str:
    return f"L{step.level}" if step.repeat == 0 else f"L{step.level} r{step.repeat}"


def _page_label(page: PageAt) -> str:
    return f"{page.channel} (digest)" if page.digest else page.channel


def _page_detail(page: PageAt) -> str:
    kind = "a digest" if page.digest else page.channel
    return f"{kind} to {page.contact}, level {page.level}, {_pass(page.repeat)}"


def _label_place(x: float, label: str) -> tuple[float, str]:
    """Return where a label beside a mark at `x` begins and its anchor: right of the
    mark, or left of it where it would run past the right edge."""
    if x + MARK + LABEL_GAP + len(label) * CHAR_WIDTH <= WIDTH:
        return round(x + MARK + LABEL_GAP, 3), "start"
    return round(x - MARK - LABEL_GAP, 3), "end"


def _row(
    title: str,
    user: str | None,
    marks: Sequence[tuple[datetime, str, str]],
    top: float,
    x_of: Callable[[datetime], float],
) -> tuple[Row, float]:
    """Return a row of `marks` (at, label, detail) whose title begins at `top`, and the top
    of the next row. Each mark goes on the first track where its label overlaps no other;
    a row has at least one track, empty or not."""
    y = top + ROW_TITLE
    ends: list[float] = []  # per track: where its last label ends
    placed = []
    for at, label, detail in marks:
        x = x_of(at)
        label_x, anchor = _label_place(x, label)
        width = len(label) * CHAR_WIDTH
        left = min(x - MARK, label_x - width if anchor == "end" else label_x)
        right = max(x + MARK, label_x if anchor == "end" else label_x + width)
        track = next((n for n, e in enumerate(ends) if e + LABEL_GAP <= left), len(ends))
        if track == len(ends):
            ends.append(right)
        else:
            ends[track] = right
        middle = y + track * TRACK + TRACK / 2
        placed.append(Mark(at, x, middle, label, label_x, anchor, detail))
    height = max(len(ends), 1) * TRACK
    row = Row(title, user, top + ROW_TITLE - 6, y, height, tuple(placed))
    return row, y + height + ROW_GAP


def _candidates(start: datetime, end: datetime) -> list[datetime]:
    """Return every quarter-hour instant (UTC) from `start` to `end`, both included."""
    utc = start.astimezone(UTC)
    first = utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)
    if first < utc:
        first += QUARTER
    found = []
    moment = first
    while moment <= end:
        found.append(moment)
        moment += QUARTER
    return found


def _ticks(
    start: datetime, end: datetime, zone: ZoneInfo, x_of: Callable[[datetime], float]
) -> tuple[Tick, ...]:
    """Return the axis's ticks: local wall-clock times that are whole multiples of the
    spacing that keeps them few enough, each where its instant is."""
    span = (end - start).total_seconds() / 60
    spacing = next((m for m in TICK_MINUTES if span / m <= MAX_TICKS), TICK_MINUTES[-1])
    ticks = []
    last_day, last_zone = None, None
    for moment in _candidates(start, end):
        local = moment.astimezone(zone)
        if (local.hour * 60 + local.minute) % spacing:
            continue
        abbreviation = local.tzname()
        if spacing == 1440:
            label = f"{local:%a} {local.day}"
            day = ""
        else:
            label = f"{local:%H:%M}"
            if last_zone is not None and abbreviation != last_zone:
                label = f"{label} {abbreviation}"
            day = f"{local:%a} {local.day}" if local.date() != last_day else ""
        x = x_of(moment)
        longest = max(len(label), len(day)) * CHAR_WIDTH
        label_x, anchor = (x + LABEL_GAP, "start")
        if x + LABEL_GAP + longest > WIDTH:
            label_x, anchor = (x - LABEL_GAP, "end")
        ticks.append(Tick(moment, x, label, day, round(label_x, 3), anchor))
        last_day, last_zone = local.date(), abbreviation
    return tuple(ticks)


def _changes(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """Return each instant in (start, end] when `zone`'s offset changes, with its words."""
    found = []
    previous = start
    for moment in [*_candidates(start, end), end]:
        before, after = previous.astimezone(zone), moment.astimezone(zone)
        if before.utcoffset() != after.utcoffset():
            low, high = previous, moment  # the offset changes in (low, high]
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == before.utcoffset():
                    low = middle
                else:
                    high = middle
            at = high.replace(microsecond=0)
            shift = (after.utcoffset() or timedelta()) - (before.utcoffset() or timedelta())
            way = "forward" if shift > timedelta() else "back"
            amount = f"{abs(shift) / timedelta(hours=1):g} h"
            found.append((at, f"clocks go {way} {amount} ({before.tzname()} to {after.tzname()})"))
        previous = moment
    return found
