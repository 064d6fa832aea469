"""Schedules as the service uses them: overrides, shifts, who is on call, calendar feeds.

Every override added or deleted and every feed created, rotated or revoked is recorded in
the audit log in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from oncall.audit import entries
from oncall.audit.service import Audit
from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.errors import NotFound
from oncall.escalation.targets import recipients
from oncall.schedules import feeds, store
from oncall.schedules.overrides import Override, check_may_manage, check_span, override_user
from oncall.schedules.rotation import Schedule, Shift, on_call, shifts


@dataclass(frozen=True)
class OnCall:
    """Who is on call at `at`: per schedule (None: nobody), and per policy the users each
    level pages, in order."""

    at: datetime
    schedules: dict[str, str | None]
    policies: dict[str, list[tuple[int, list[str], list[str]]]]  # (level, targets, users)


@dataclass(frozen=True)
class Timeline:
    """A schedule over [start, end): each layer's shifts on its own (no overrides), the
    final shifts (layers and overrides), the overrides that shape them, and the rows of the
    schedule's overrides ending after `start` (creation order: later ones win)."""

    schedule: Schedule
    start: datetime
    end: datetime
    layers: list[list[Shift]]
    final: list[Shift]
    overrides: list[Override]
    rows: list[Any]


@dataclass(frozen=True)
class Handoff:
    """The next change of who is on call: at `at` to `to` (None: to nobody)."""

    at: datetime
    to: str | None


def next_handoff(found: Sequence[Shift], at: datetime, end: datetime) -> Handoff | None:
    """Return the first change after `at` of who is on call, given the contiguous shifts
    `found` in [at, end), or None when nothing changes before `end`."""
    if not found:
        return None
    first = found[0]
    if first.start > at:
        return Handoff(first.start, first.user)
    if first.end >= end:
        return None
    following = found[1] if len(found) > 1 else None
    if following is not None and following.start == first.end:
        return Handoff(first.end, following.user)
    return Handoff(first.end, None)


def overrides_within_in(
    conn: Connection, schedules: Iterable[str], start: datetime, end: datetime
) -> Mapping[str, Sequence[Override]]:
    """Inside the caller's transaction: the overrides of each schedule overlapping
    [start, end), in creation order (later ones win where they overlap)."""
    return store.overrides_within(conn, schedules, start, end)


class Schedules:
    def __init__(self, db: Database, directory: DirectoryHolder, audit: Audit) -> None:
        self.db = db
        self.directory = directory
        self.audit = audit

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
        self,
        name: str,
        user: object,
        start: datetime,
        end: datetime,
        actor: str,
        now: datetime,
        *,
        admin: bool = False,
    ) -> Any:
        """Store an override of a schedule, recorded in the audit log, and return its row.

        Raises NotFound for the schedule, InvalidInput naming `user` or `end`, Forbidden
        when a responder (`admin` false) names someone else."""
        schedule = self.schedule(name)
        who = self.override_user(user)
        check_span(start, end)
        check_may_manage(actor, admin, who)

        def add(conn: Connection) -> Any:
            row = store.add_override(conn, schedule.name, who, start, end, actor, now)
            detail = {"schedule": row.schedule, "user": row.user_name, "start": start, "end": end}
            self.audit.record_in(conn, actor, entries.OVERRIDE_CREATE, _subject(row), detail, now)
            return row

        return await self.db.run(add)

    async def overrides(self, name: str) -> list[Any]:
        """Return a schedule's overrides in creation order; raises NotFound."""
        return await self.db.run(store.list_overrides, self.schedule(name).name)

    async def delete_override(
        self, name: str, override_id: int, actor: str, now: datetime, *, admin: bool = False
    ) -> None:
        """Delete an override, recording who did and what it was in the audit log.

        Raises NotFound for the schedule or the override, Forbidden when a responder
        (`admin` false) deletes someone else's; either writes nothing."""
        schedule = self.schedule(name).name

        def remove(conn: Connection) -> None:
            row = store.override(conn, schedule, override_id)
            if row is None:
                raise NotFound("override not found", "id")
            check_may_manage(actor, admin, row.user_name)
            store.delete_override(conn, schedule, override_id)
            detail = {
                "schedule": row.schedule,
                "user": row.user_name,
                "start": row.start_at,
                "end": row.end_at,
                "created_by": row.created_by,
                "created_at": row.created_at,
            }
            self.audit.record_in(conn, actor, entries.OVERRIDE_DELETE, _subject(row), detail, now)

        await self.db.run(remove)

    def user(self, name: str) -> str:
        """Return the name of the directory's user `name`; raises NotFound naming `name`."""
        if name not in self.directory.current.users:
            raise NotFound(f"user {name!r} not found", "name")
        return name

    async def create_feed(self, user: str, actor: str, now: datetime) -> str:
        """Give `user` a new calendar feed secret in place of any earlier one (whose URLs
        stop working), recorded in the audit log, and return it. Only its digest is
        stored: this is the only time it is known. Raises NotFound naming `name` for an
        unknown user."""
        user = self.user(user)
        secret = feeds.new_secret()

        def replace(conn: Connection) -> None:
            rotated = store.replace_feed(conn, user, feeds.digest(secret), actor, now)
            action = entries.FEED_ROTATE if rotated else entries.FEED_CREATE
            self.audit.record_in(conn, actor, action, f"user:{user}", {}, now)

        await self.db.run(replace)
        return secret

    async def revoke_feed(self, user: str, actor: str, now: datetime) -> None:
        """Delete `user`'s calendar feed secret, recorded in the audit log; raises NotFound
        naming `name` for an unknown user and when there is no feed."""
        user = self.user(user)

        def revoke(conn: Connection) -> None:
            if not store.delete_feed(conn, user):
                raise NotFound(f"user {user!r} has no calendar feed", "name")
            self.audit.record_in(conn, actor, entries.FEED_REVOKE, f"user:{user}", {}, now)

        await self.db.run(revoke)

    async def feed_opens(self, user: str, secret: str) -> bool:
        """Return whether `secret` is the current feed secret of the directory's `user`."""
        if user not in self.directory.current.users:
            return False
        stored = await self.db.run(store.feed_digest, user)
        return stored is not None and feeds.matches(secret, stored)

    async def has_feed(self, user: str) -> bool:
        """Return whether `user` has a calendar feed secret (its URLs are not known)."""
        return await self.db.run(store.feed_digest, user) is not None

    async def shifts(self, name: str, start: datetime, end: datetime) -> list[Shift]:
        """Return a schedule's contiguous shifts in [start, end); raises NotFound."""
        schedule = self.schedule(name)
        overrides = await self.db.run(store.overrides_between, schedule.name, start, end)
        return shifts(schedule, overrides, start, end)

    async def timeline(self, name: str, start: datetime, end: datetime) -> Timeline:
        """Return a schedule's Timeline over [start, end), its overrides read in one
        transaction; raises NotFound."""
        schedule = self.schedule(name)
        rows = await self.db.run(store.list_overrides, schedule.name, start)
        spans = [Override(r.user_name, r.start_at, r.end_at) for r in rows if r.start_at < end]
        layers = [
            shifts(Schedule(schedule.name, schedule.time_zone, (layer,)), [], start, end)
            for layer in schedule.layers
        ]
        return Timeline(
            schedule, start, end, layers, shifts(schedule, spans, start, end), spans, rows
        )

    async def next_handoff(self, name: str, at: datetime, within: timedelta) -> Handoff | None:
        """Return a schedule's first change of who is on call after `at` and before
        `at + within`, or None; raises NotFound."""
        end = at + within
        return next_handoff(await self.shifts(name, at, end), at, end)

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


def _subject(row: Any) -> str:
    return f"schedule:{row.schedule}/override:{row.id}"
