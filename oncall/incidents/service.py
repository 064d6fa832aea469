"""Incidents as people act on them: acknowledge, resolve, read; and what closing one means
for its escalation and its pages, inside whichever transaction closes it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oncall.db.engine import Connection, Database
from oncall.incidents import store
from oncall.metrics import Metrics
from oncall.timers.effects import AfterCommit
from oncall.timers.followups import Followups

if TYPE_CHECKING:
    from oncall.escalation.service import Escalation
    from oncall.notify.notifier import Notifier


class Incidents:
    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        after_commit: AfterCommit,
        escalation: Escalation,
        pager: Notifier,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.after_commit = after_commit
        self.escalation = escalation
        self.pager = pager

    # Inside the caller's transaction.

    def close_in(
        self, conn: Connection, incident_id: int, resolved: bool, now: datetime
    ) -> Followups:
        """Stop the escalation and unsent pages of an incident just acknowledged or
        resolved (the UPDATE that closed it cleared its pending step); on resolution queue
        the resolved messages."""
        followups = Followups(removed=self.escalation.stop_in(conn, incident_id, now))
        return followups.merge(self.pager.close_pages_in(conn, incident_id, resolved, now))

    def acknowledge_in(
        self, conn: Connection, incident_id: int, actor: str, now: datetime
    ) -> store.ActionResult:
        return store.acknowledge(conn, incident_id, actor, now, self)

    def resolve_in(
        self, conn: Connection, incident_id: int, actor: str, now: datetime, reason: str
    ) -> store.ActionResult:
        return store.resolve(conn, incident_id, actor, now, self, reason)

    # Acting.

    async def acknowledge(self, incident_id: int, actor: str, now: datetime) -> store.ActionResult:
        """Acknowledge and stop escalating. Raises NotFound or Conflict."""
        result = await self.db.run(store.acknowledge, incident_id, actor, now, self)
        self.after_commit(result.followups)
        if result.changed:
            self.metrics.incidents.labels("acknowledged").inc()
        return result

    async def resolve(self, incident_id: int, actor: str, now: datetime) -> store.ActionResult:
        """Resolve and stop escalating. Raises NotFound."""
        result = await self.db.run(store.resolve, incident_id, actor, now, self)
        self.after_commit(result.followups)
        if result.changed:
            self.metrics.incidents.labels("resolved").inc()
        return result

    # Reading.

    async def get(self, incident_id: int) -> Any:
        """Return the incident's row; raises NotFound."""
        return await self.db.run(store.get_incident, incident_id)

    async def details(self, incident_id: int) -> tuple[Any, list[Any], list[Any]]:
        """Return the incident with its alerts and timeline; raises NotFound."""
        return await self.db.run(store.incident_details, incident_id)

    async def list_incidents(
        self, statuses: Sequence[str], limit: int, before_id: int | None
    ) -> list[Any]:
        """Return up to `limit` incidents, newest first, below `before_id` when given."""
        return await self.db.run(store.list_incidents, statuses, limit, before_id)
