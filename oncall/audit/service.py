"""The audit log as the service uses it: record a change, read the log back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from oncall.audit import store
from oncall.audit.entries import Entry
from oncall.db.engine import Connection, Database


class Audit:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record_in(
        self,
        conn: Connection,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any],
        now: datetime,
    ) -> int:
        """Inside the caller's transaction (the one making the change): store who did
        `action` to `subject` and return the entry's id. `detail` is plain JSON values
        (datetimes are stored as RFC 3339 text)."""
        return store.record(conn, Entry(now, actor, action, subject, detail))

    async def record(
        self, actor: str, action: str, subject: str, detail: Mapping[str, Any], now: datetime
    ) -> int:
        """Store an entry in a transaction of its own (for an action that changes nothing
        in the database, such as a reload) and return its id."""
        return await self.db.run(store.record, Entry(now, actor, action, subject, detail))

    async def newest(self, limit: int, before: int | None = None) -> list[Any]:
        """Return up to `limit` entries newest first, older than id `before` when given."""
        return await self.db.run(store.newest, limit, before)
