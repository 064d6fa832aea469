"""The storm guard's decisions: whether the service is in an alert storm at an instant, and
when a person's next digest is due. Pure.

In a storm (more incidents opened within the window than `[paging] storm_threshold` says),
a person's per-incident pages are folded into one digest a minute. The storm lasts until
the rate has stayed at or below the threshold for a whole window, so a storm that pauses
for a moment does not flood everyone with single pages in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from oncall.durations import format_duration, parse_duration

DIGEST_INTERVAL = timedelta(minutes=1)  # at most one digest a person per this
DIGEST_TITLES = 5  # incident titles a digest shows, newest first
DIGEST_KIND = "digest"  # the notification kind of a digest
FOLDED = "folded"  # the status of a page a storm folded into a digest

T = TypeVar("T")


@dataclass(frozen=True)
class StormThreshold:
    """More than `count` incidents opened within `window` is a storm."""

    count: int
    window: timedelta

    @property
    def lookback(self) -> int:
        """Return how many of the newest incidents' open times `in_storm` needs."""
        # More than twice the count within two windows puts one window over the count.
        return 2 * self.count + 2

    def __str__(self) -> str:
        return f"{self.count}/{format_duration(self.window)}"


DEFAULT_THRESHOLD = StormThreshold(50, timedelta(minutes=5))


@dataclass(frozen=True)
class DigestSummary:
    """What a digest says: how many incidents opened within the window before it was sent,
    and the newest few of them (ids and titles, newest first)."""

    count: int
    window: timedelta
    newest: tuple[tuple[int, str], ...]

    @property
    def title(self) -> str:
        return digest_title(self.count, self.window)


def parse_threshold(text: str) -> StormThreshold:
    """Return the threshold written `count/duration` (e.g. `50/5m`). Raises ValueError."""
    count, sep, window = text.partition("/")
    if not sep or not count.strip().isdigit():
        raise ValueError(f"expected count/duration like 50/5m, got {text!r}")
    parsed = StormThreshold(int(count), parse_duration(window.strip()))
    if parsed.count < 1 or parsed.window <= timedelta(0):
        raise ValueError(f"expected a count above zero and a duration above zero, got {text!r}")
    return parsed


def storm_possible(nth_newest: datetime | None, threshold: StormThreshold, now: datetime) -> bool:
    """Return whether a storm at `now` is possible at all, from the open time of the
    incident `threshold.count` places before the newest (None: there are not that many).

    A storm needs more than `count` openings within one window ending in the last window,
    all of them within the last two windows; when that incident opened before, fewer
    than `count + 1` did, and the newest incidents need not be read.
    """
    return nth_newest is not None and nth_newest > now - 2 * threshold.window


def in_storm(opened: Iterable[datetime], threshold: StormThreshold, now: datetime) -> bool:
    """Return whether the service is in a storm at `now`, from the open times of the
    newest `threshold.lookback` incidents (any order; more are fine).

    A storm: at some instant of the last window, more than `threshold.count` incidents had
    opened within the window before it. The count over a window is largest when the window
    ends at an opening, so only openings need checking.
    """
    window = threshold.window
    recent = sorted(min(t, now) for t in opened if t > now - 2 * window)
    if len(recent) >= threshold.lookback:
        return True  # all these within two windows: one of the two holds more than count
    start = 0
    for end, at in enumerate(recent):
        while recent[start] <= at - window:
            start += 1
        if at >= now - window and end - start + 1 > threshold.count:
            return True
    return False


def digest_due(last: datetime | None, now: datetime) -> datetime:
    """Return when a person's next digest is due: now, or a digest interval after their
    last digest (`last`: when it was due or sent) when that is later."""
    if last is None:
        return now
    return max(now, last + DIGEST_INTERVAL)


def digest_targets(pages: Sequence[tuple[T, timedelta]]) -> list[T]:
    """Return the contacts a person's digest goes to, from the pages their notification
    rules would write (contact, delay): those due first. Later rules (a phone call after a
    while) are for one incident someone may acknowledge; a digest is not acknowledged."""
    if not pages:
        return []
    first = min(after for _, after in pages)
    return list(dict.fromkeys(contact for contact, after in pages if after == first))


def fold(
    pages: Sequence[tuple[str, T, timedelta]],
    pending: Callable[[str], bool],
    last: Callable[[str], datetime | None],
    now: datetime,
) -> tuple[list[str], list[tuple[str, T, datetime]]]:
    """Return what a storm makes of a level's pages (user, contact, delay) at `now`: the
    users whose pages it folds, in order, and the digests to write (user, contact, due):
    one to each of `digest_targets` of a user's pages, due `digest_due` after their
    `last` digest, for each user who has no `pending` digest already (one that has not
    gone out yet carries this incident too)."""
    by_user: dict[str, list[tuple[T, timedelta]]] = {}
    for user, contact, after in pages:
        by_user.setdefault(user, []).append((contact, after))
    digests: list[tuple[str, T, datetime]] = []
    for user, theirs in by_user.items():
        if pending(user):
            continue
        due = digest_due(last(user), now)
        digests += [(user, contact, due) for contact in digest_targets(theirs)]
    return list(by_user), digests


def digest_title(count: int, window: timedelta) -> str:
    """Return a digest's headline, e.g. `143 incidents opened in the last 5 minutes`."""
    noun = "incident" if count == 1 else "incidents"
    return f"{count} {noun} opened in the last {_spoken(window)}"


def _spoken(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0 and seconds >= size and window.microseconds == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return format_duration(window)
