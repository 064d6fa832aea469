"""Schedule overrides and calendar feeds in the database; each function runs inside one
transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Row

from oncall.db.models import calendar_feeds as feeds
from oncall.db.models import schedule_overrides as table
from oncall.schedules.overrides import Override

_INSTANT = timedelta(microseconds=1)


def add_override(
    conn: Connection,
    schedule: str,
    user: str,
    start: datetime,
    end: datetime,
    actor: str,
    now: datetime,
) -> Row[Any]:
    """Store an override and return its row."""
    override_id = conn.execute(
        insert(table)
        .values(
            schedule=schedule,
            user_name=user,
            start_at=start,
            end_at=end,
            created_by=actor,
            created_at=now,
        )
        .returning(table.c.id)
    ).scalar_one()
    return conn.execute(select(table).where(table.c.id == override_id)).one()


def list_overrides(
    conn: Connection, schedule: str, ending_after: datetime | None = None
) -> list[Row[Any]]:
    """Return a schedule's overrides in creation order (later ones win where they overlap)."""
    query = select(table).where(table.c.schedule == schedule).order_by(table.c.id)
    if ending_after is not None:
        query = query.where(table.c.end_at > ending_after)
    return list(conn.execute(query).all())


def delete_override(conn: Connection, schedule: str, override_id: int) -> bool:
    """Delete an override; return whether it existed."""
    return (
        conn.execute(
            delete(table).where(table.c.schedule == schedule, table.c.id == override_id)
        ).rowcount
        == 1
    )


def overrides_between(
    conn: Connection, schedule: str, start: datetime, end: datetime
) -> list[Override]:
    """Return the schedule's overrides overlapping [start, end), as values for `on_call`."""
    rows = conn.execute(
        select(table.c.user_name, table.c.start_at, table.c.end_at)
        .where(table.c.schedule == schedule, table.c.end_at > start, table.c.start_at < end)
        .order_by(table.c.id)
    )
    return [Override(user, begin, finish) for user, begin, finish in rows]


def overrides_within(
    conn: Connection, schedules: Iterable[str], start: datetime, end: datetime
) -> dict[str, list[Override]]:
    """Return the overrides overlapping [start, end) of each named schedule."""
    return {name: overrides_between(conn, name, start, end) for name in schedules}


def overrides_at(
    conn: Connection, schedules: Iterable[str], at: datetime
) -> dict[str, list[Override]]:
    """Return the overrides covering the instant `at` of each named schedule."""
    return {name: overrides_between(conn, name, at, at + _INSTANT) for name in schedules}


def override(conn: Connection, schedule: str, override_id: int) -> Row[Any] | None:
    """Return a schedule's override by id, or None."""
    return conn.execute(
        select(table).where(table.c.schedule == schedule, table.c.id == override_id)
    ).one_or_none()


def feed_digest(conn: Connection, user: str) -> str | None:
    """Return the stored digest of a user's calendar feed secret, or None without a feed."""
    found: str | None = conn.execute(
        select(feeds.c.secret_sha256).where(feeds.c.user_name == user)
    ).scalar_one_or_none()
    return found


def replace_feed(
    conn: Connection, user: str, secret_digest: str, actor: str, now: datetime
) -> bool:
    """Store a user's feed secret digest in place of any earlier one; return whether there
    was one."""
    existed = delete_feed(conn, user)
    conn.execute(
        insert(feeds).values(
            user_name=user, secret_sha256=secret_digest, created_at=now, created_by=actor
        )
    )
    return existed


def delete_feed(conn: Connection, user: str) -> bool:
    """Delete a user's feed; return whether there was one."""
    return conn.execute(delete(feeds).where(feeds.c.user_name == user)).rowcount == 1
