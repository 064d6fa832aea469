"""Escalation as the service runs it: a step's job fires it, with retries; other domains
fire and stop steps inside their own transactions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from oncall.clock import Clock
from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.directory.model import Directory, Policy
from oncall.escalation import store
from oncall.escalation.policies import policy_named
from oncall.escalation.steps import Step, job_id, step_job
from oncall.incidents.lifecycle import Opened
from oncall.metrics import Metrics
from oncall.notify.retry import backoff
from oncall.timers.effects import AfterCommit
from oncall.timers.followups import ESCALATION, JobSpec

log = logging.getLogger(__name__)
ATTEMPTS = 4  # the first try and 3 retries
BACKOFF = timedelta(seconds=5)  # 5, 10, 20 s between them


class Escalation:
    job_store = ESCALATION  # the job store of its steps (for the reconciler)

    def __init__(
        self,
        db: Database,
        directory: DirectoryHolder,
        clock: Clock,
        metrics: Metrics,
        after_commit: AfterCommit,
        rota: store.Rota,
        pager: store.Pager,
        retry_base: timedelta = BACKOFF,
    ) -> None:
        self.db = db
        self.directory = directory
        self.clock = clock
        self.metrics = metrics
        self.after_commit = after_commit
        self.rota = rota
        self.pager = pager
        self.retry_base = retry_base
        # Whether this process still runs the timers (oncall.cluster): a step's retries
        # stop once it does not, and the leader's reconciler takes the step over.
        self.leads: Callable[[], bool] = lambda: True

    # Inside another domain's transaction.

    def fire_in(
        self,
        conn: Connection,
        incident_id: int,
        step: Step,
        directory: Directory,
        now: datetime,
        opened: Opened | None,
    ) -> store.FireResult:
        """Fire a step (a new incident's first, when `opened`): see `store.fire_step`."""
        return store.fire_step(
            conn, incident_id, step, directory, now, self.rota, self.pager, opened
        )

    def first_timer_in(
        self, conn: Connection, incident_id: int, policy: Policy, now: datetime
    ) -> JobSpec:
        """Leave a new incident's first step to a timer due now; return its job."""
        return store.first_timer(conn, incident_id, policy, now)

    def stop_in(self, conn: Connection, incident_id: int, now: datetime) -> list[tuple[str, str]]:
        """Cancel a closed incident's pending steps; return their jobs to remove."""
        return [(ESCALATION, job) for job in store.stop_escalation(conn, incident_id, now)]

    def opened(self, fired: int) -> None:
        """Count first steps paged with their incidents' opening: on time by definition."""
        self.metrics.steps.labels("fired").inc(fired)
        for _ in range(fired):
            self.metrics.lateness.observe(0.0)

    # A step's job.

    async def run_step(self, incident_id: int, step: Step) -> bool:
        """Fire one escalation step, retrying failures; return whether it fired.

        A failing attempt is retried 3 times with exponential backoff (5, 10, 20 s); then
        the step is marked failed (timeline, /health) and the reconciler tries it again on
        its next pass, because the incident still points at it.
        """
        error: Exception | None = None
        for attempt in range(1, ATTEMPTS + 1):
            now = self.clock()
            try:
                result = await self.db.run(
                    store.fire_step,
                    incident_id,
                    step,
                    self.directory.current,
                    now,
                    self.rota,
                    self.pager,
                )
            except Exception as failure:  # a pager retries, then reports
                error = failure
                log.warning(
                    "escalation step failed",
                    extra={
                        "incident": incident_id,
                        "level": step.level,
                        "repeat": step.repeat,
                        "attempt": attempt,
                        "error": repr(failure),
                    },
                )
                if attempt < ATTEMPTS:
                    await asyncio.sleep(backoff(attempt, self.retry_base).total_seconds())
                if not self.leads():
                    log.info(
                        "escalation step left to the leader",
                        extra={"incident": incident_id, "level": step.level},
                    )
                    return False
                continue
            self.after_commit(result.followups)
            outcome = "fired" if result.fired else "stale"
            self.metrics.steps.labels(outcome).inc()
            if result.fired and result.due_at is not None:
                self.metrics.lateness.observe(max(0.0, (now - result.due_at).total_seconds()))
            if not result.fired:
                log.info(
                    "stale escalation job did nothing",
                    extra={
                        "incident": incident_id,
                        "level": step.level,
                        "repeat": step.repeat,
                        "reason": result.reason,
                    },
                )
            return result.fired
        self.metrics.steps.labels("failed").inc()
        await self._mark_failed(incident_id, step, repr(error))
        return False

    async def _mark_failed(self, incident_id: int, step: Step, error: str) -> None:
        try:
            await self.db.run(store.mark_failed, incident_id, step, ATTEMPTS, error, self.clock())
        except Exception:  # the database is what failed; the reconciler retries
            log.error(
                "could not record the failed step", exc_info=True, extra={"incident": incident_id}
            )

    async def queue_stats(self, now: datetime) -> dict[str, int]:
        """Return the count of overdue and of failed steps."""
        return await self.db.run(store.queue_stats, now)

    # The reconciler's source of step timers.

    async def expected(self) -> Mapping[str, store.Pending]:
        """Return the pending step of every triggered incident, by the job id it must have
        in Redis under the current directory."""
        steps = await self.db.run(store.pending_steps)
        # Looked at in a worker thread: a large backlog holds the GIL in short runs.
        return await asyncio.to_thread(self._by_job_id, steps, self.directory.current)

    @staticmethod
    def _by_job_id(
        steps: Iterable[store.Pending], directory: Directory
    ) -> dict[str, store.Pending]:
        return {
            job_id(incident_id, Step(level, repeat), policy_named(directory, policy)): (
                incident_id,
                policy,
                level,
                repeat,
                due,
            )
            for incident_id, policy, level, repeat, due in steps
        }

    async def due(self, now: datetime, limit: int) -> list[JobSpec]:
        """Return the jobs of up to `limit` steps due by `now` (for the sweep)."""
        return self.jobs(await self.db.run(store.pending_steps, now, limit))

    def jobs(self, items: Iterable[store.Pending]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""
        directory = self.directory.current
        return [
            step_job(incident_id, Step(level, repeat), policy_named(directory, policy), due)
            for incident_id, policy, level, repeat, due in items
        ]
