"""Maintenance as the service runs it: windows added and deleted through the API (each in
the audit log), new incidents held in their opening transaction, and the edge timer.

The edge timer is one job with a fixed id (`maintenance:edge`): it only wakes the process
when a window opens or closes; what it does is `store.apply`, which reads the truth from
the database. The reconciler expects it at the first edge after the windows were last
applied, or at once when the windows changed since (added, deleted, the directory
reloaded), so an edge missed while the process was down or Redis was gone is applied late,
and once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from oncall.audit.service import Audit
from oncall.clock import Clock
from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.errors import InvalidInput
from oncall.maintenance import store
from oncall.maintenance.windows import Window, check_window, next_edge
from oncall.timers.effects import AfterCommit
from oncall.timers.followups import ESCALATION, MAINTENANCE_JOB, JobSpec

log = logging.getLogger(__name__)
EDGE_JOB_ID = "maintenance:edge"


def edge_job(due: datetime) -> JobSpec:
    """Return the job that applies the windows at `due`."""
    return JobSpec(ESCALATION, EDGE_JOB_ID, MAINTENANCE_JOB, (), due)


def windows_in(conn: Connection, file_windows: Sequence[Window]) -> list[Window]:
    """Inside the caller's transaction: every window, the directory file's (`file_windows`)
    first, then the API's, in the order that decides which one holds an incident."""
    return [*file_windows, *store.stored_windows(conn)]


class Maintenance:
    job_store = ESCALATION  # the job store of the edge timer (for the reconciler)

    def __init__(
        self,
        db: Database,
        directory: DirectoryHolder,
        clock: Clock,
        after_commit: AfterCommit,
        audit: Audit,
        hold: store.Holding,
    ) -> None:
        self.db = db
        self.directory = directory
        self.clock = clock
        self.after_commit = after_commit
        self.audit = audit
        self.hold = hold

    def _file_windows(self) -> tuple[Window, ...]:
        return self.directory.current.maintenance

    # Inside another domain's transaction.

    def holding_in(
        self, conn: Connection, labels: dict[str, str], integration: str, now: datetime
    ) -> Window | None:
        """Return the open window that holds a new incident's paging, or None."""
        return store.holding(conn, self._file_windows(), labels, integration, now)

    # The API.

    def check(self, body: Any) -> dict[str, Any]:
        """Return a window's fields from an API body, ready to store; raises InvalidInput
        naming the first field at fault."""
        integrations = set(self.directory.current.integrations)
        window, problems = check_window(body, "api:new", integrations)
        if window is None:
            field, message = problems[0] if problems else ("$", "invalid window")
            raise InvalidInput(message, field)
        data = window.describe()
        del data["key"]
        return data

    async def add(self, data: dict[str, Any], actor: str, now: datetime) -> tuple[Window, Any]:
        """Store a checked window (`check`) and its audit entry in one transaction, then
        apply the windows; return it with its row."""

        def work(conn: Connection) -> Any:
            row = store.add_window(conn, data, actor, now)
            self.audit.record_in(conn, actor, "maintenance.add", f"maintenance:{row.id}", data, now)
            return row

        row = await self.db.run(work)
        await self.apply_edge()
        return store.as_window(row), row

    async def delete(self, window_id: int, actor: str, now: datetime) -> None:
        """Delete a window with its audit entry, then apply the windows (what it held is
        released). Raises NotFound."""

        def work(conn: Connection) -> None:
            row = store.delete_window(conn, window_id)
            self.audit.record_in(
                conn,
                actor,
                "maintenance.delete",
                f"maintenance:{window_id}",
                {"name": row.name},
                now,
            )

        await self.db.run(work)
        await self.apply_edge()

    async def windows(self) -> list[tuple[Window, Any]]:
        """Return every window with its row (None for the directory file's)."""
        rows = await self.db.run(store.list_windows)
        return [(w, None) for w in self._file_windows()] + [
            (store.as_window(row), row) for row in rows
        ]

    # The edge job.

    async def apply_edge(self) -> store.Applied | None:
        """Apply the windows now and arm the next edge; None when it failed (logged: the
        reconciler arms it again, due at once)."""
        now = self.clock()
        try:
            result = await self.db.run(store.apply, self._file_windows(), now, self.hold)
            windows = [*self._file_windows(), *await self.db.run(store.stored_windows)]
        except Exception as error:
            log.warning("applying maintenance windows failed", extra={"error": repr(error)})
            return None
        following = next_edge(windows, now)
        if following is None:
            result.followups.removed.append((ESCALATION, EDGE_JOB_ID))
        else:
            result.followups.jobs.append(edge_job(following))
        self.after_commit(result.followups)
        if result.held or result.released:
            log.info(
                "maintenance applied",
                extra={"held": result.held, "released": result.released},
            )
        return result

    # The reconciler's source of the edge timer.

    async def _due(self) -> datetime | None:
        def read(conn: Connection) -> tuple[list[Window], tuple[datetime, str] | None]:
            return [*self._file_windows(), *store.stored_windows(conn)], store.last_applied(conn)

        windows, applied = await self.db.run(read)
        if applied is None:
            return self.clock() if windows else None
        at, seen = applied
        if seen != store.fingerprint(windows):
            return self.clock()
        return next_edge(windows, at)

    async def expected(self) -> Mapping[str, datetime]:
        """Return the edge timer, by its job id, when one is pending."""
        due = await self._due()
        return {} if due is None else {EDGE_JOB_ID: due}

    async def due(self, now: datetime, limit: int) -> list[JobSpec]:
        """Return the edge job when it is due by `now` (for the sweep)."""
        due = await self._due()
        return [edge_job(due)] if due is not None and due <= now and limit > 0 else []

    def jobs(self, items: Iterable[datetime]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""
        return [edge_job(due) for due in items]
