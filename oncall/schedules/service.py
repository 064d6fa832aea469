"""Schedules as the service uses them: overrides, shifts, and who is on call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.errors import NotFound
from oncall.escalation.targets import recipients
from oncall.schedules import store
from oncall.schedules.overrides import Override, check_span, override_user
from oncall.schedules.rotation import Schedule, Shift, on_call, shifts


@dataclass(frozen=True)
class OnCall:
    """Who is on call at `at`: per schedule (None: nobody), and per policy the users each
    level pages, in order."""

    at: datetime
    schedules: dict[str, str | None]
    policies: dict[str, list[tuple[int, list[str], list[str]]]]  # (level, targets, users)


class Schedules:
    def __init__(self, db: Database, directory: DirectoryHolder) -> None:
        self.db = db
        self.directory = directory

    def overrides_in(
        self, conn: Connection, schedules: Iterable[str], at: datetime
    ) -> Mapping[str, Sequence[Override]]:
        """Inside the caller's transaction: the overrides covering `at` of each schedule."""
        return store.overrides_at(conn, schedules, at)

    def schedule(self, name: str) -> Schedule:
        """Return the schedule named `name`; raises NotFound."""
        schedule = self.directory.current.schedules.get(name)
        if schedule is None:
            raise NotFound(f"schedule {name!r} not found", "name")
        return schedule

    def override_user(self, user: object) -> str:
        """Return the user a new override names; raises InvalidInput naming `user`."""
        return override_user(self.directory.current.users, user)

    async def add_override(
        self, name: str, user: object, start: datetime, end: datetime, actor: str, now: datetime
    ) -> Any:
        """Store an override of a schedule and return its row; raises NotFound for the
        schedule, InvalidInput naming `user` or `end`."""
        schedule = self.schedule(name)
        who = self.override_user(user)
        check_span(start, end)
        return await self.db.run(store.add_override, schedule.name, who, start, end, actor, now)

    async def overrides(self, name: str) -> list[Any]:
        """Return a schedule's overrides in creation order; raises NotFound."""
        return await self.db.run(store.list_overrides, self.schedule(name).name)

    async def delete_override(self, name: str, override_id: int) -> None:
        """Delete an override; raises NotFound for the schedule or the override."""
        if not await self.db.run(store.delete_override, self.schedule(name).name, override_id):
            raise NotFound("override not found", "id")

    async def shifts(self, name: str, start: datetime, end: datetime) -> list[Shift]:
        """Return a schedule's contiguous shifts in [start, end); raises NotFound."""
        schedule = self.schedule(name)
        overrides = await self.db.run(store.overrides_between, schedule.name, start, end)
        return shifts(schedule, overrides, start, end)

    async def who_is_on_call(self, at: datetime) -> OnCall:
        """Return who is on call at `at` for every schedule and every policy level, read in
        one transaction."""
        directory = self.directory.current
        overrides = await self.db.run(store.overrides_at, list(directory.schedules), at)
        return OnCall(
            at,
            {
                name: on_call(schedule, overrides[name], at)
                for name, schedule in directory.schedules.items()
            },
            {
                policy.name: [
                    (
                        number,
                        [str(t) for t in level.targets],
                        recipients(level.targets, directory, overrides, at)[0],
                    )
                    for number, level in enumerate(policy.levels, start=1)
                ]
                for policy in directory.policies.values()
            },
        )
