"""Who is on call: rotations in real time zones, restrictions and overrides. Pure.

Handoffs keep their local wall-clock time across daylight-saving changes: handoff k is at
local `handoff + k * rotation`, converted to an instant in the schedule's zone. A local time
that does not exist (the spring gap) moves to the first valid instant after it; an
ambiguous one (the autumn overlap) takes its first occurrence. Later layers take precedence
where they have someone; an override wins over every layer for its span.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from oncall.schedules.overrides import Override

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Why someone is on call (`on_call_via`): an override, a layer by its index, or nobody.
OVERRIDE, LAYER, NOBODY = "override", "layer:", "nobody"


@dataclass(frozen=True)
class Restriction:
    """Windows opening on `days` (0 = Monday) at local `start` and closing at local `end`
    (the next day when `end` is not after `start`)."""

    days: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True)
class Layer:
    members: tuple[str, ...]
    rotation: timedelta
    handoff: datetime  # naive local wall-clock time of the first handoff
    restrict: Restriction | None = None


@dataclass(frozen=True)
class Schedule:
    name: str
    time_zone: str
    layers: tuple[Layer, ...]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Shift:
    user: str
    start: datetime
    end: datetime


def localize(naive: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of a local wall-clock time in `zone`.

    Nonexistent times (in a spring-forward gap) give the first valid instant after the gap;
    ambiguous times (in an autumn overlap) give the first occurrence.
    """
    first = naive.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    # In a gap: the transition lies between the two readings of the local time; find the
    # earliest instant whose local time is at or after `naive`, to the second.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = instant
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def handoff_at(layer: Layer, zone: ZoneInfo, k: int) -> datetime:
    """Return the instant of the layer's k-th handoff (k = 0 is the first)."""
    return localize(layer.handoff + k * layer.rotation, zone)


def _rotation_index(layer: Layer, zone: ZoneInfo, at: datetime) -> int | None:
    """Return k with handoff k <= at < handoff k+1, or None before the first handoff."""
    local = at.astimezone(zone).replace(tzinfo=None)
    k = (local - layer.handoff) // layer.rotation
    while k >= 0 and handoff_at(layer, zone, k) > at:
        k -= 1
    while handoff_at(layer, zone, k + 1) <= at:
        k += 1
    return k if k >= 0 else None


def _windows(
    restriction: Restriction, zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Return the restriction's windows (as instants) that can overlap [start, end)."""
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    windows = []
    day = first
    while day <= last:
        if day.weekday() in restriction.days:
            closes_on = day if restriction.end > restriction.start else day + timedelta(days=1)
            opened = localize(datetime.combine(day, restriction.start), zone)
            closed = localize(datetime.combine(closes_on, restriction.end), zone)
            if opened < closed:
                windows.append((opened, closed))
        day += timedelta(days=1)
    return windows


def layer_on_call(layer: Layer, zone: ZoneInfo, at: datetime) -> str | None:
    """Return the layer's member on call at `at`, or None (before it starts, or outside its
    restriction windows)."""
    if layer.restrict is not None and not any(
        opened <= at < closed for opened, closed in _windows(layer.restrict, zone, at, at)
    ):
        return None
    k = _rotation_index(layer, zone, at)
    return None if k is None else layer.members[k % len(layer.members)]


def on_call_via(
    schedule: Schedule, overrides: Sequence[Override], at: datetime
) -> tuple[str | None, str]:
    """Return who is on call at `at` and why: (user, OVERRIDE) for the latest override
    covering it, else (user, `layer:<index>`) for the last layer that has someone (its
    index in the schedule's `layers`, from 0), else (None, NOBODY)."""
    for override in reversed(overrides):
        if override.start <= at < override.end:
            return override.user, OVERRIDE
    zone = schedule.zone
    for index in range(len(schedule.layers) - 1, -1, -1):
        person = layer_on_call(schedule.layers[index], zone, at)
        if person is not None:
            return person, f"{LAYER}{index}"
    return None, NOBODY


def on_call(schedule: Schedule, overrides: Sequence[Override], at: datetime) -> str | None:
    """Return who is on call at `at`: the latest override covering it, else the last layer
    that has someone, else None (see `on_call_via`)."""
    return on_call_via(schedule, overrides, at)[0]


def _boundaries(
    schedule: Schedule, overrides: Sequence[Override], start: datetime, end: datetime
) -> list[datetime]:
    zone = schedule.zone
    points = {start, end}
    for layer in schedule.layers:
        k = _rotation_index(layer, zone, start)
        k = 0 if k is None else k
        while (instant := handoff_at(layer, zone, k)) < end:
            if instant > start:
                points.add(instant)
            k += 1
        if layer.restrict is not None:
            for opened, closed in _windows(layer.restrict, zone, start, end):
                points |= {p for p in (opened, closed) if start < p < end}
    for override in overrides:
        points |= {p for p in (override.start, override.end) if start < p < end}
    return sorted(points)


def shifts(
    schedule: Schedule, overrides: Sequence[Override], start: datetime, end: datetime
) -> list[Shift]:
    """Return the contiguous spans in [start, end) with somebody on call, merged per person.

    Spans with nobody on call are left out; adjacent spans of one person are one shift.
    """
    points = _boundaries(schedule, overrides, start, end)
    result: list[Shift] = []
    for begin, finish in itertools.pairwise(points):
        person = on_call(schedule, overrides, begin)
        if person is None:
            continue
        if result and result[-1].user == person and result[-1].end == begin:
            result[-1] = Shift(person, result[-1].start, finish)
        else:
            result.append(Shift(person, begin, finish))
    return result
