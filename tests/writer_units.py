"""Units of work for tests/test_writer.py and tests/test_database.py: module-level, so
that the writer process receives them by name (as it receives the store's)."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from oncall.directory import Directory
from oncall.models import meta


def write(conn: Connection, key: str, fail: bool = False) -> str:
    conn.execute(insert(meta).values(key=key, value="x"))
    if fail:
        raise ValueError(f"{key} failed after writing")
    return key


def keys(conn: Connection) -> list[str]:
    return sorted(conn.execute(select(meta.c.key).where(meta.c.key.like("k%"))).scalars())


def pid(_conn: Connection) -> int:
    return os.getpid()


def directory_seen(_conn: Connection, directory: Directory) -> tuple[int, int]:
    """Return the process and the identity of the directory object the unit was given."""
    return os.getpid(), id(directory)


def exit_now(_conn: Connection) -> None:
    os._exit(3)  # the writer dies in the middle of a batch


def unsendable(_conn: Connection) -> Any:
    return lambda: None  # a result that cannot be pickled back


def violate_at_commit(conn: Connection) -> None:
    """Write an alert of no incident with foreign keys checked at commit: the commit fails."""
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    conn.exec_driver_sql(
        "INSERT INTO alerts (incident_id, integration, fingerprint, starts_at, status, labels,"
        " annotations, created_at, updated_at) VALUES (424242, 'x', 'f', '2026-01-01',"
        " 'firing', '{}', '{}', '2026-01-01', '2026-01-01')")
