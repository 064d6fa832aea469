"""Who a level's targets page at a moment: users as named, schedules by who is on call. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from oncall.directory.model import Directory, Target
from oncall.schedules.overrides import Override
from oncall.schedules.rotation import on_call


def recipients(
    targets: Sequence[Target],
    directory: Directory,
    overrides: Mapping[str, Sequence[Override]],
    at: datetime,
) -> tuple[list[str], list[str]]:
    """Return (users paged, schedules with nobody on call) for a level's targets at `at`.

    Users come in target order, each once; `overrides` holds each schedule's overrides.
    """
    paged: list[str] = []
    nobody: list[str] = []
    for target in targets:
        name: str | None = target.name
        if target.kind == "schedule":
            schedule = directory.schedules.get(target.name)
            name = (
                on_call(schedule, overrides.get(target.name, ()), at)
                if schedule is not None
                else None
            )
            if name is None:
                nobody.append(target.name)
        if name is not None and name in directory.users and name not in paged:
            paged.append(name)
    return paged, nobody


def schedules_named(targets: Sequence[Target]) -> list[str]:
    """Return the schedules among `targets`, in order, each once."""
    return list(dict.fromkeys(t.name for t in targets if t.kind == "schedule"))
