"""Incidents over the last days: how many opened on each local day, how long they took to
be acknowledged and to be resolved, and the bar chart that shows it. Pure.

Days are local days of one time zone (the viewer's): a day with a daylight-saving change
is still one bar, 23 or 25 hours long. The window is today and the days before it, so
"the last 30 days" ends with the day that is still going on.

The medians are over the incidents opened in the window: time to acknowledge over those
acknowledged (an acknowledgement taken back no longer counts), time to resolve over those
resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = 30
# (created_at, acknowledged_at, resolved_at) of one incident
Row = tuple[datetime, datetime | None, datetime | None]


@dataclass(frozen=True)
class DayCount:
    day: date
    opened: int


@dataclass(frozen=True)
class Summary:
    """What the window holds: one count per local day, oldest first, today last."""

    days: tuple[DayCount, ...]
    opened: int
    acknowledged: int  # how many of the opened have an acknowledgement (the ack median's size)
    resolved: int  # how many of the opened were resolved (the resolve median's size)
    median_ack: timedelta | None  # None: nothing to take a median of
    median_resolve: timedelta | None


def first_day(now: datetime, zone: str, days: int = DAYS) -> date:
    """Return the local date the window of `days` days ending today begins on."""
    return now.astimezone(ZoneInfo(zone)).date() - timedelta(days=days - 1)


def window_start(now: datetime, zone: str, days: int = DAYS) -> datetime:
    """Return the first instant of the window (local midnight of its first day; the first
    instant after a daylight-saving gap at midnight), for a query's lower bound."""
    # fold=0 reads a midnight in a gap with the offset before it: the instant of the change.
    return datetime.combine(first_day(now, zone, days), time(0), tzinfo=ZoneInfo(zone))


def median(values: Sequence[timedelta]) -> timedelta | None:
    """Return the median of `values` (the mean of the middle two for an even count), None
    for none."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def summarize(rows: Iterable[Row], now: datetime, zone: str, days: int = DAYS) -> Summary:
    """Return the daily counts and the medians of the incidents in `rows` opened in the
    `days` local days (in `zone`) ending with `now`'s; rows outside them are left out."""
    tz = ZoneInfo(zone)
    start = first_day(now, zone, days)
    counts = dict.fromkeys((start + timedelta(days=i) for i in range(days)), 0)
    to_ack: list[timedelta] = []
    to_resolve: list[timedelta] = []
    for created, acknowledged, resolved in rows:
        day = created.astimezone(tz).date()
        if day not in counts or created > now:
            continue
        counts[day] += 1
        if acknowledged is not None:
            to_ack.append(max(acknowledged - created, timedelta(0)))
        if resolved is not None:
            to_resolve.append(max(resolved - created, timedelta(0)))
    return Summary(
        days=tuple(DayCount(day, n) for day, n in counts.items()),
        opened=sum(counts.values()),
        acknowledged=len(to_ack),
        resolved=len(to_resolve),
        median_ack=median(to_ack),
        median_resolve=median(to_resolve),
    )


def duration_words(value: timedelta | None) -> str:
    """Return a duration for people, to the second below an hour (`4 min 30 s`), to the
    minute below a day (`2 h 5 min`), else to the hour (`3 d 4 h`); "none" for None."""
    if value is None:
        return "none"
    seconds = round(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {seconds} s" if seconds else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


# The chart.

WIDTH, HEIGHT = 360, 230  # viewBox units; the picture scales to the page's width
LEFT, RIGHT, TOP, BOTTOM = 26, 16, 44, 24  # room for the value axis, the medians, the days
LABEL_EVERY = 7  # a day label every week, counted back from today (always labelled)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    opened: int
    label: str | None  # the day axis's text under this bar, if any


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float  # x of the plot's right edge
    top: float
    bottom: float  # y of the day axis
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]  # the value axis, bottom up
    median_ack: str  # the medians in words, written in the chart
    median_resolve: str


def axis_top(highest: int) -> int:
    """Return the value axis's top: the smallest of 1, 2, 5, 10, 20, 50, ... at least
    `highest` (1 for an empty chart)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if factor * step >= highest:
                return factor * step
        step *= 10


def chart(summary: Summary) -> Chart:
    """Return the bar chart of `summary`'s days: one bar per day, oldest left."""
    count = len(summary.days)
    top_value = axis_top(max((d.opened for d in summary.days), default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(count, 1)
    gap = min(2.0, slot / 4)
    bars = []
    for index, day in enumerate(summary.days):
        height = plot_height * day.opened / top_value
        labelled = (count - 1 - index) % LABEL_EVERY == 0
        bars.append(
            Bar(
                x=round(LEFT + index * slot + gap / 2, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                day=day.day,
                opened=day.opened,
                label=f"{day.day.day} {day.day:%b}" if labelled else None,
            )
        )
    values = sorted({0, top_value // 2, top_value} if top_value % 2 == 0 else {0, top_value})
    ticks = tuple(
        Tick(round(TOP + plot_height - plot_height * v / top_value, 2), v) for v in values
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        bottom=TOP + plot_height,
        bars=tuple(bars),
        ticks=ticks,
        median_ack=duration_words(summary.median_ack),
        median_resolve=duration_words(summary.median_resolve),
    )
