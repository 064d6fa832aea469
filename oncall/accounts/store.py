"""Passwords in the database; each function runs inside one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Row

from oncall.db.models import ended_sessions
from oncall.db.models import passwords as table


def password_of(conn: Connection, user: str) -> Row[Any, Any] | None:
    """Return the user's password row (hash, changed_at), or None when none is set."""
    return conn.execute(
        select(table.c.hash, table.c.changed_at).where(table.c.user_name == user)
    ).first()


def set_password(conn: Connection, user: str, hashed: str, now: datetime) -> None:
    """Store the user's password hash, replacing any earlier one."""
    conn.execute(delete(table).where(table.c.user_name == user))
    conn.execute(table.insert().values(user_name=user, hash=hashed, changed_at=now))


def rehash(conn: Connection, user: str, old: str, new: str) -> None:
    """Replace the hash `old` by `new` (same password, stronger parameters); does nothing
    when the password changed meanwhile."""
    conn.execute(
        update(table).where(table.c.user_name == user, table.c.hash == old).values(hash=new)
    )


def users_with_passwords(conn: Connection) -> set[str]:
    """Return the names of the users who have a password."""
    return set(conn.execute(select(table.c.user_name)).scalars())


def end_session(
    conn: Connection, session_id: str, user: str, expires_at: datetime, now: datetime
) -> None:
    """Record that the session `session_id` of `user` ended, to be remembered until
    `expires_at`; forget the ended sessions whose cookies have expired by `now`."""
    conn.execute(delete(ended_sessions).where(ended_sessions.c.expires_at <= now))
    conn.execute(delete(ended_sessions).where(ended_sessions.c.id == session_id))
    conn.execute(
        ended_sessions.insert().values(id=session_id, user_name=user, expires_at=expires_at)
    )


def session_ended(conn: Connection, session_id: str) -> bool:
    """Return whether the session `session_id` was ended (by logging out)."""
    found = conn.execute(
        select(ended_sessions.c.id).where(ended_sessions.c.id == session_id)
    ).first()
    return found is not None
