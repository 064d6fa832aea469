"""The audit log in the database; each function runs inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Row

from oncall.audit.entries import Entry, storable
from oncall.db.models import audit_log as table


def record(conn: Connection, entry: Entry) -> int:
    """Store an entry and return its id."""
    entry_id: int = conn.execute(
        insert(table)
        .values(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            detail=storable(entry.detail),
        )
        .returning(table.c.id)
    ).scalar_one()
    return entry_id


def newest(conn: Connection, limit: int, before: int | None) -> list[Row[Any]]:
    """Return up to `limit` entries newest first, only those older than id `before` when
    given."""
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(table.c.id < before)
    return list(conn.execute(query).all())
