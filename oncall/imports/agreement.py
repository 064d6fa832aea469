"""Does an imported schedule name whoever the vendor says is on call? Pure.

An importer reads the vendor's own on-call data for the weeks ahead (Opsgenie's timeline,
Grafana OnCall's final shifts) and says in a comment on each schedule whether the imported
one agrees, checked by the schedule code itself at the start, middle and end of every span
the vendor gave, and in the middle of every gap between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from oncall.imports.directory_writer import ImportedSchedule
from oncall.schedules.rotation import DAYS, Layer, Restriction, Schedule, on_call

MAX_SHOWN = 3  # disagreements named in the comment


@dataclass(frozen=True)
class Span:
    """The vendor says `people` are on call from `start` until `end`."""

    start: datetime
    end: datetime
    people: frozenset[str]  # directory names where known, else the vendor's


def as_schedule(imported: ImportedSchedule) -> Schedule:
    """Return the schedule the directory parser would make of `imported`."""
    layers = []
    for layer in imported.layers:
        restrict = None
        if layer.restrict is not None:
            days = frozenset(DAYS.index(d) for d in layer.restrict.days)
            restrict = Restriction(days, layer.restrict.start, layer.restrict.end)
        layers.append(Layer(tuple(layer.members), layer.rotation, layer.handoff, restrict))
    return Schedule(imported.name, imported.time_zone, tuple(layers))


def instants(spans: Sequence[Span], start: datetime, end: datetime) -> list[datetime]:
    """Return the instants in [start, end) to check `spans` at."""
    found: list[datetime] = []
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    for span in ordered:
        found += [span.start, span.start + (span.end - span.start) / 2]
        found.append(span.end - min(timedelta(minutes=1), (span.end - span.start) / 2))
    for before, after in itertools.pairwise(ordered):
        if after.start > before.end:
            found.append(before.end + (after.start - before.end) / 2)
    if not ordered:
        found.append(start + (end - start) / 2)
    return sorted({at for at in found if start <= at < end})


def agreement(
    imported: ImportedSchedule,
    spans: Sequence[Span],
    start: datetime,
    end: datetime,
    vendor: str,
) -> str:
    """Return a comment saying whether `imported` names, at each instant checked, one of
    the people `vendor`'s `spans` name (or nobody where they name nobody)."""
    schedule = as_schedule(imported)
    zone = ZoneInfo(imported.time_zone)
    wrong = []
    checked = instants(spans, start, end)
    for at in checked:
        expected = frozenset().union(*(s.people for s in spans if s.start <= at < s.end))
        got = on_call(schedule, [], at)
        if (got is None and expected) or (got is not None and got not in expected):
            shown = ", ".join(sorted(expected)) or "nobody"
            local = f"{at.astimezone(zone):%Y-%m-%d %H:%M}"
            wrong.append(f"{local} {vendor} names {shown}, here {got or 'nobody'}")
    period = f"{start.astimezone(zone):%Y-%m-%d %H:%M} to {end.astimezone(zone):%Y-%m-%d %H:%M}"
    if not wrong:
        return (
            f"checked against {vendor}'s on-call data from {period} at {len(checked)} "
            "instants: agrees"
        )
    first = "; ".join(wrong[:MAX_SHOWN])
    return (
        f"checked against {vendor}'s on-call data from {period}: disagrees at {len(wrong)} of "
        f"{len(checked)} instants (overrides are not imported), e.g. {first}"
    )
