"""Passwords in the database; each function runs inside one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Row

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
