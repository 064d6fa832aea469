"""Who a level's targets page at a moment: users as named, schedules by who is on call. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from oncall.directory.model import Directory, Target
from oncall.schedules.overrides import Override
from oncall.schedules.rotation import NOBODY, on_call_via

USER = "user"  # a `user:NAME` target's reason: it names the user


@dataclass(frozen=True)
class Resolution:
    """What one target stands for at an instant: the user (None: nobody) and why: USER,
    an override, a schedule's layer, or nobody (`rotation.on_call_via`)."""

    target: Target
    user: str | None
    via: str


def resolve(
    targets: Sequence[Target],
    directory: Directory,
    overrides: Mapping[str, Sequence[Override]],
    at: datetime,
) -> list[Resolution]:
    """Return each of a level's targets resolved at `at`, in order; `overrides` holds each
    schedule's overrides (a schedule the directory no longer has resolves to nobody)."""
    found = []
    for target in targets:
        if target.kind != "schedule":
            found.append(Resolution(target, target.name, USER))
            continue
        schedule = directory.schedules.get(target.name)
        if schedule is None:
            found.append(Resolution(target, None, NOBODY))
            continue
        user, via = on_call_via(schedule, overrides.get(target.name, ()), at)
        found.append(Resolution(target, user, via))
    return found


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
    for found in resolve(targets, directory, overrides, at):
        if found.user is None:
            nobody.append(found.target.name)
        elif found.user in directory.users and found.user not in paged:
            paged.append(found.user)
    return paged, nobody


def schedules_named(targets: Sequence[Target]) -> list[str]:
    """Return the schedules among `targets`, in order, each once."""
    return list(dict.fromkeys(t.name for t in targets if t.kind == "schedule"))
