"""Schedule overrides in the database; each function runs inside one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Row

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


def overrides_at(
    conn: Connection, schedules: Iterable[str], at: datetime
) -> dict[str, list[Override]]:
    """Return the overrides covering the instant `at` of each named schedule."""
    return {name: overrides_between(conn, name, at, at + _INSTANT) for name in schedules}
