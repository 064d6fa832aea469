"""When who is on call changes, over the simulated span, for the schedules a policy pages
(what a person reading a simulation wants beside its steps). Pure: from the schedules'
own `shifts`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from oncall.directory.model import Directory, Policy
from oncall.escalation.targets import schedules_named
from oncall.schedules.overrides import Override
from oncall.schedules.rotation import shifts


@dataclass(frozen=True)
class Handoff:
    """At `at`, schedule `schedule` passes from `before` to `after` (None: nobody)."""

    at: datetime
    schedule: str
    before: str | None
    after: str | None


def handoffs(
    directory: Directory,
    policy: Policy | None,
    overrides: Mapping[str, Sequence[Override]],
    start: datetime,
    end: datetime,
) -> list[Handoff]:
    """Return the changes of who is on call within (start, end) of each schedule the
    policy's levels name, in time order."""
    if policy is None:
        return []
    found: list[Handoff] = []
    names = schedules_named([t for level in policy.levels for t in level.targets])
    for name in names:
        schedule = directory.schedules.get(name)
        if schedule is None:
            continue
        spans: list[tuple[datetime, str | None]] = []
        cursor = start
        for shift in shifts(schedule, overrides.get(name, ()), start, end):
            if shift.start > cursor:
                spans.append((cursor, None))
            spans.append((shift.start, shift.user))
            cursor = shift.end
        if cursor < end:
            spans.append((cursor, None))
        found += [
            Handoff(at, name, before, after)
            for (_, before), (at, after) in itertools.pairwise(spans)
            if before != after
        ]
    return sorted(found, key=lambda h: (h.at, h.schedule))
