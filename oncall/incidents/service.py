"""Incidents as people act on them: acknowledge, resolve, read; and what closing one means
for its escalation and its pages, inside whichever transaction closes it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from oncall.db.engine import Connection, Database
from oncall.directory.model import Directory
from oncall.errors import Conflict, NotFound
from oncall.escalation.policies import policy_named
from oncall.escalation.steps import Step
from oncall.incidents import actions, store, wakes
from oncall.metrics import Metrics
from oncall.timers.effects import AfterCommit
from oncall.timers.followups import ESCALATION, Followups, JobSpec

if TYPE_CHECKING:
    from oncall.escalation.service import Escalation
    from oncall.notify.notifier import Notifier


log = logging.getLogger(__name__)


def opened_before_in(
    conn: Connection, since: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Inside the caller's transaction: when the newest incidents opened in (since,
    until] opened, newest first, at most `limit`."""
    return store.opened_before(conn, since, until, limit)


class Incidents:
    job_store = ESCALATION  # the job store of incidents' wakes (for the reconciler)

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
        # The open maintenance window holding a new incident's paging (set by the runtime).
        self.held_in: Callable[[Connection, dict[str, str], str, datetime], Any] = (
            lambda conn, labels, integration, now: None
        )

    # Inside the caller's transaction.

    def close_in(
        self, conn: Connection, incident_id: int, resolved: bool, now: datetime
    ) -> Followups:
        """Stop the escalation and unsent pages of an incident just acknowledged or
        resolved (the UPDATE that closed it cleared its pending step); on resolution queue
        the resolved messages."""
        followups = Followups(removed=self.escalation.stop_in(conn, incident_id, now))
        followups.merge(self.pager.close_pages_in(conn, incident_id, resolved, now))
        if resolved:  # its UPDATE cleared the wake's due times
            followups.removed.append((ESCALATION, wakes.wake_job_id(incident_id)))
            return followups
        row = store.get_incident(conn, incident_id)
        timeout = wakes.ack_timeout(self.escalation.directory.current, row.route, row.policy)
        at = None if timeout is None else now + timeout
        return followups.merge(store.arm_ack_timeout(conn, incident_id, at))

    def pause_in(self, conn: Connection, incident_id: int, now: datetime) -> Followups:
        """Stop the pending steps and unsent pages of an incident just snoozed."""
        followups = Followups(removed=self.escalation.stop_in(conn, incident_id, now))
        return followups.merge(self.pager.close_pages_in(conn, incident_id, False, now))

    def acknowledge_in(
        self, conn: Connection, incident_id: int, actor: str, now: datetime
    ) -> store.ActionResult:
        return store.acknowledge(conn, incident_id, actor, now, self)

    def resolve_in(
        self, conn: Connection, incident_id: int, actor: str, now: datetime, reason: str
    ) -> store.ActionResult:
        return store.resolve(conn, incident_id, actor, now, self, reason)

    def restart_in(
        self, conn: Connection, incident_id: int, step: Step, now: datetime, replace: bool
    ) -> Followups:
        """Fire `step` now for an incident an action has just pointed at it (its pending
        timers cancelled first; with `replace`, its unsent pages too: the escalation they
        belonged to is over). Returns the timers and pages to apply after commit."""
        followups = Followups(removed=self.escalation.stop_in(conn, incident_id, now))
        # Triggered again (its UPDATE cleared the wake's due times): no wake is pending.
        followups.removed.append((ESCALATION, wakes.wake_job_id(incident_id)))
        if replace:
            followups.merge(self.pager.close_pages_in(conn, incident_id, False, now))
        directory = self.escalation.directory.current
        fired = self.escalation.fire_in(conn, incident_id, step, directory, now, None)
        followups.merge(fired.followups)
        # A timer armed again under the id of one just cancelled must stay: removals are
        # applied after additions.
        armed = {(job.store, job.job_id) for job in followups.jobs}
        followups.removed = [job for job in followups.removed if job not in armed]
        return followups

    def release_in(
        self,
        conn: Connection,
        incident_id: int,
        actor: str,
        now: datetime,
        decide: Callable[[Any], actions.Restart | None],
    ) -> store.ActionResult:
        """Carry out `decide`'s restart of the incident (`store.restart`) in the caller's
        transaction: a maintenance window releasing it."""
        return store.restart(conn, incident_id, actor, now, decide, self)

    def page_responder_in(
        self, conn: Connection, incident_id: int, user: str, now: datetime
    ) -> Followups:
        """Write the pages of a responder added by hand (level 0: no level of the
        escalation); return them to send after commit."""
        users = [self.escalation.directory.current.users[user]]
        return Followups(pages=self.pager.write_pages_in(conn, incident_id, 0, 0, users, now, None))

    # Acting.

    def directory(self) -> Directory:
        """Return the directory actions are checked against (the current one)."""
        return self.escalation.directory.current

    async def add_note(self, incident_id: int, actor: str, text: str, now: datetime) -> Any:
        """Add a note to the timeline; return the incident. Raises NotFound."""
        result = await self.db.run(store.add_note, incident_id, actor, text, now)
        return result.row

    async def unacknowledge(
        self, incident_id: int, actor: str, now: datetime
    ) -> store.ActionResult:
        """Trigger an acknowledged incident again, escalating from level 1 now (a
        triggered one is left as it is). Raises NotFound or Conflict."""
        return await self._restart(
            incident_id,
            actor,
            now,
            lambda row: actions.unacknowledge(incident_id, row.status, row.policy),
        )

    async def escalate(
        self, incident_id: int, actor: str, level: int | None, now: datetime
    ) -> store.ActionResult:
        """Fire `level` (default: the next) now and escalate on from it. Raises NotFound,
        Conflict, or InvalidInput naming `level`."""
        directory = self.directory()
        return await self._restart(
            incident_id,
            actor,
            now,
            lambda row: actions.escalate(
                incident_id,
                row.status,
                policy_named(directory, row.policy),
                Step(row.next_level or 1, row.next_repeat or 0),
                level,
            ),
        )

    async def reassign(
        self, incident_id: int, actor: str, policy: str, now: datetime
    ) -> store.ActionResult:
        """Replace the escalation with `policy` (`actions.reassign_target`) from its
        level 1, now. Raises NotFound or Conflict."""
        return await self._restart(
            incident_id,
            actor,
            now,
            lambda row: actions.reassign(incident_id, row.status, row.policy, policy),
        )

    async def snooze(
        self, incident_id: int, actor: str, duration: timedelta, now: datetime
    ) -> store.ActionResult:
        """Acknowledge the incident for `duration` (`wakes.snooze_duration`), then trigger
        it again at level 1. Raises NotFound or Conflict."""
        until = wakes.snooze_end(now, duration)
        result = await self.db.run(store.snooze, incident_id, actor, until, now, self)
        self.after_commit(result.followups)
        return result

    async def run_wake(self, incident_id: int, now: datetime | None = None) -> bool:
        """The wake job: trigger the incident again at level 1 if its snooze ended or its
        acknowledgement timed out; return whether it did. A failure is logged: the due time
        stays on the row and the reconciler wakes it again."""
        when = now if now is not None else self.escalation.clock()
        try:
            result = await self.db.run(store.wake, incident_id, when, self)
        except (NotFound, Conflict) as error:  # deleted, or changed by a person meanwhile
            log.info(
                "incident wake did nothing", extra={"incident": incident_id, "why": str(error)}
            )
            return False
        except Exception as error:
            log.warning(
                "incident wake failed", extra={"incident": incident_id, "error": repr(error)}
            )
            return False
        self.after_commit(result.followups)
        if result.changed:
            self.metrics.steps.labels("fired").inc()
        return result.changed

    # The reconciler's source of wake timers.

    async def expected(self) -> Mapping[str, store.Wake]:
        """Return the pending wake of every acknowledged incident, by its job id."""
        return {wakes.wake_job_id(wake[0]): wake for wake in await self.db.run(store.pending_wakes)}

    async def due(self, now: datetime, limit: int) -> list[JobSpec]:
        """Return the jobs of up to `limit` wakes due by `now` (for the sweep)."""
        return self.jobs(await self.db.run(store.pending_wakes, now, limit))

    def jobs(self, items: Iterable[store.Wake]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""
        return [wakes.wake_job(incident_id, due) for incident_id, due in items]

    async def add_responder(
        self, incident_id: int, actor: str, user: str, now: datetime
    ) -> store.ActionResult:
        """Page `user` now, the escalation unchanged. Raises NotFound or Conflict."""
        result = await self.db.run(store.add_responder, incident_id, user, actor, now, self)
        self.after_commit(result.followups)
        return result

    async def _restart(
        self,
        incident_id: int,
        actor: str,
        now: datetime,
        decide: Callable[[Any], actions.Restart | None],
    ) -> store.ActionResult:
        result = await self.db.run(store.restart, incident_id, actor, now, decide, self)
        self.after_commit(result.followups)
        if result.changed:
            self.metrics.steps.labels("fired").inc()
        return result

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
        self,
        statuses: Sequence[str],
        limit: int,
        before_id: int | None,
        search: str | None = None,
    ) -> list[Any]:
        """Return up to `limit` incidents, newest first, below `before_id` when given,
        whose title or a label value holds `search` when given."""
        return await self.db.run(store.list_incidents, statuses, limit, before_id, search)

    async def count_incidents(self, search: str | None = None) -> dict[str, int]:
        """Return how many incidents each status has (those `search` finds, when given)."""
        return await self.db.run(store.count_incidents, search)

    async def opened_since(self, since: datetime) -> list[tuple[Any, Any, Any]]:
        """Return (created_at, acknowledged_at, resolved_at) of the incidents opened at or
        after `since`, oldest first."""
        return await self.db.run(store.opened_since, since)
