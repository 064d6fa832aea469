"""Maintenance windows: when one is open, what it covers, when the next one opens or closes.
Pure.

A window is one-off (`start` to `end`, instants with an offset) or weekly (`every:` local
`from` to `to` on `days`, in a time zone; `to` not after `from` ends the next day). A weekly
window keeps its local wall-clock times across daylight-saving changes, as rotations do
(`oncall.schedules.rotation.localize`): a start in the spring gap opens at the first
instant after it, one in the autumn overlap at its first occurrence.

It covers an incident when its `match` matchers accept the incident's labels and, if it
names `integrations`, the incident came through one of them; a window with neither covers
every incident. Input is checked here for both the directory file and the API, each
problem named by its field.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oncall.routing.matchers import Matcher, matches_all, parse_matcher
from oncall.schedules.rotation import DAYS, localize

MAX_NAME = 200  # characters of a window's name
MAX_ITEMS = 100  # matchers or integrations of one window
_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_KEYS = {"name", "start", "end", "every", "match", "integrations"}
_EVERY_KEYS = {"days", "from", "to", "time_zone"}
# Local days looked at around an instant: a week ahead, and a day back for a window that
# opened yesterday and closes today.
_DAYS_BACK, _DAYS_AHEAD = 2, 9


@dataclass(frozen=True)
class Weekly:
    """Open on `days` (0 = Monday) from local `start` to local `end` in `time_zone`."""

    days: frozenset[int]
    start: time
    end: time
    time_zone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def spans(self, around: datetime) -> list[tuple[datetime, datetime]]:
        """Return the (open, close) instants of the occurrences opening within a few
        local days either side of `around`, in order."""
        zone = self.zone
        today = around.astimezone(zone).date()
        found = []
        for offset in range(-_DAYS_BACK, _DAYS_AHEAD):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                found.append(self._span(day, zone))
        return found

    def _span(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        closing_day = day if self.end > self.start else day + timedelta(days=1)
        return (
            localize(datetime.combine(day, self.start), zone),
            localize(datetime.combine(closing_day, self.end), zone),
        )


@dataclass(frozen=True)
class Window:
    """A maintenance window. `key` identifies it: `directory:NAME` for the directory
    file's, `api:ID` for one added through the API."""

    key: str
    name: str
    match: tuple[Matcher, ...] = ()
    integrations: frozenset[str] = frozenset()
    start: datetime | None = None  # one-off
    end: datetime | None = None
    every: Weekly | None = None  # weekly

    def spans(self, around: datetime) -> list[tuple[datetime, datetime]]:
        """Return the window's (open, close) instants near `around`."""
        if self.every is not None:
            return self.every.spans(around)
        assert self.start is not None and self.end is not None
        return [(self.start, self.end)]

    def is_open(self, now: datetime) -> bool:
        """Return whether the window is open at `now` (open at its start, closed at its end)."""
        return any(start <= now < end for start, end in self.spans(now))

    def next_edge(self, now: datetime) -> datetime | None:
        """Return the first instant after `now` at which the window opens or closes; None
        when it never will again."""
        edges = [edge for span in self.spans(now) for edge in span if edge > now]
        return min(edges, default=None)

    def covers(self, labels: Mapping[str, str], integration: str) -> bool:
        """Return whether the window applies to an incident with `labels` from `integration`."""
        if self.integrations and integration not in self.integrations:
            return False
        return matches_all(self.match, labels)

    def describe(self) -> dict[str, Any]:
        """Return the window as the API shows it (times as datetimes)."""
        every = None
        if self.every is not None:
            every = {
                "days": [DAYS[d] for d in sorted(self.every.days)],
                "from": self.every.start.strftime("%H:%M"),
                "to": self.every.end.strftime("%H:%M"),
                "time_zone": self.every.time_zone,
            }
        return {
            "key": self.key,
            "name": self.name,
            "start": self.start,
            "end": self.end,
            "every": every,
            "match": [str(m) for m in self.match],
            "integrations": sorted(self.integrations),
        }


def covering(
    windows: Iterable[Window], labels: Mapping[str, str], integration: str, now: datetime
) -> Window | None:
    """Return the first window open at `now` that covers the incident, or None."""
    for window in windows:
        if window.is_open(now) and window.covers(labels, integration):
            return window
    return None


# What applying the windows does to an open incident (`edge_change`).
HOLD, MOVE, RELEASE = "hold", "move", "release"


def edge_change(covering_key: str | None, held_by: str | None) -> str | None:
    """Return what applying the windows does to an open incident, from the key of the
    window covering it now (`covering`; None: none) and of the window holding it (None:
    none): HOLD it (its pending step and unsent pages stop), MOVE it to another window
    that holds it on, RELEASE it (a triggered one escalates from level 1), or None."""
    if covering_key is not None and held_by is None:
        return HOLD
    if covering_key is not None and held_by != covering_key:
        return MOVE
    if covering_key is None and held_by is not None:
        return RELEASE
    return None


def next_edge(windows: Iterable[Window], now: datetime) -> datetime | None:
    """Return the first instant after `now` at which any of `windows` opens or closes."""
    return min((e for w in windows if (e := w.next_edge(now)) is not None), default=None)


# Input, from the directory file or an API body.

Problems = list[tuple[str, str]]  # (field, message)


def check_window(
    data: Any, key: str, integrations: Collection[str]
) -> tuple[Window | None, Problems]:
    """Return the window written in `data` (a mapping from YAML or JSON) under `key`, and
    every problem found, each with its field (`start`, `every.time_zone`, `match[1]`);
    the window is None when there is any. `integrations`: the names that exist."""
    problems: Problems = []
    if not isinstance(data, Mapping):
        return None, [("$", "expected an object")]
    for name in data:
        if name not in _KEYS:
            problems.append((str(name), "unknown key"))
    title = data.get("name")
    if not isinstance(title, str) or not title.strip():
        problems.append(("name", "expected a non-empty string"))
    elif len(title) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in title):
        problems.append(("name", f"at most {MAX_NAME} characters, no control characters"))
    start = end = None
    every = None
    if "every" in data:
        for field in ("start", "end"):
            if field in data:
                problems.append((field, "a window has start and end, or every, not both"))
        every = _weekly(data["every"], problems)
    elif "start" not in data and "end" not in data:
        problems.append(("start", "required (with end), or every: for a weekly window"))
    else:
        start = _instant(data.get("start"), "start", problems)
        end = _instant(data.get("end"), "end", problems)
        if start is not None and end is not None and end <= start:
            problems.append(("end", "must be after start"))
    match = _matchers(data.get("match"), problems)
    named = _names(data.get("integrations"), integrations, problems)
    if problems or title is None:
        return None, problems
    if every is None and (start is None or end is None):
        return None, problems
    window = Window(key, title.strip(), match, named, start, end, every)
    return window, problems


def _instant(value: Any, field: str, problems: Problems) -> datetime | None:
    if isinstance(value, datetime):  # YAML reads timestamps itself
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            problems.append((field, f"{value[:40]!r} is not an ISO 8601 time"))
            return None
    else:
        problems.append((field, "expected an ISO 8601 time with an offset"))
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        problems.append((field, "the time needs an offset, e.g. 2026-12-01T02:00:00+01:00"))
        return None
    return parsed


def _weekly(value: Any, problems: Problems) -> Weekly | None:
    if not isinstance(value, Mapping):
        problems.append(("every", "expected an object with days, from, to, time_zone"))
        return None
    for name in value:
        if name not in _EVERY_KEYS:
            problems.append((f"every.{name}", "unknown key"))
    days = value.get("days", list(DAYS))
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        problems.append(("every.days", f"expected a list of {', '.join(DAYS)}"))
        days = None
    bounds = []
    for name in ("from", "to"):
        text = value.get(name)
        match = _CLOCK_TIME.match(text) if isinstance(text, str) else None
        if match is None:
            problems.append((f"every.{name}", "expected a local time as HH:MM"))
        bounds.append(time(int(match[1]), int(match[2])) if match else None)
    start, end = bounds
    if start is not None and start == end:
        problems.append(("every.to", "from and to must differ"))
    zone = value.get("time_zone")
    if not isinstance(zone, str) or not zone:
        problems.append(("every.time_zone", "expected a time zone such as Europe/Berlin"))
        zone = None
    else:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # a folder: IsADirectoryError
            problems.append(("every.time_zone", f"unknown time zone {zone[:60]!r}"))
            zone = None
    if days is None or start is None or end is None or start == end or zone is None:
        return None
    return Weekly(frozenset(DAYS.index(d) for d in days), start, end, zone)


def _matchers(value: Any, problems: Problems) -> tuple[Matcher, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        problems.append(("match", f"expected a list of at most {MAX_ITEMS} matchers"))
        return ()
    found = []
    for index, text in enumerate(value):
        if not isinstance(text, str):
            problems.append((f"match[{index}]", 'expected a matcher such as team="db"'))
            continue
        try:
            found.append(parse_matcher(text))
        except ValueError as exc:
            problems.append((f"match[{index}]", str(exc)[:200]))
    return tuple(found)


def _names(value: Any, known: Collection[str], problems: Problems) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        problems.append(("integrations", f"expected a list of at most {MAX_ITEMS} names"))
        return frozenset()
    for index, name in enumerate(value):
        if not isinstance(name, str) or name not in known:
            problems.append((f"integrations[{index}]", "expected an integration's name"))
    return frozenset(n for n in value if isinstance(n, str))
