"""The use cases: ingest a delivery, acknowledge, resolve, run an escalation step.

No HTTP here; request handlers pass `now` in, and jobs read the clock once per attempt.
Timers are touched only after the transaction that decided them has committed: if Redis
refuses, the database still says what is pending and the reconciler puts it back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc

from oncall import ratelimit, store, store_escalation, store_heartbeats
from oncall.alertmanager import AlertGroup
from oncall.clock import Clock
from oncall.db import Database
from oncall.directory import DirectoryHolder, Integration
from oncall.errors import Unavailable
from oncall.escalation import Step
from oncall.events_v2 import Event
from oncall.followups import Followups, Timer
from oncall.metrics import Metrics
from oncall.notifier import Notifier
from oncall.retry import ESCALATION_ATTEMPTS, ESCALATION_BACKOFF, backoff
from oncall.timer import ESCALATION_JOB, HEARTBEAT_JOB, JobSpec, Timers, heartbeat_job_id

log = logging.getLogger(__name__)
_RACE_RETRIES = 3


def step_jobs(timers: Iterable[Timer]) -> list[JobSpec]:
    """Return the escalation jobs of `timers`."""
    return [JobSpec(t.job_id, ESCALATION_JOB, (t.incident_id, t.level, t.repeat), t.due_at)
            for t in timers]


def deadline_jobs(deadlines: Iterable[tuple[str, datetime]]) -> list[JobSpec]:
    """Return the jobs of heartbeat deadlines (they share the escalation store)."""
    return [JobSpec(heartbeat_job_id(name), HEARTBEAT_JOB, (name,), deadline)
            for name, deadline in deadlines]


class Service:
    """Holds what the use cases need; one per process."""

    def __init__(self, db: Database, directory: DirectoryHolder, clock: Clock,
                 retry_base: timedelta = ESCALATION_BACKOFF) -> None:
        self.db = db
        self.directory = directory
        self.clock = clock
        self.retry_base = retry_base
        self.timers: Timers | None = None  # set once the scheduler exists
        self.notifier: Notifier | None = None
        self.metrics = Metrics()
        self.buckets: dict[str, ratelimit.Bucket] = {}  # Events v2 rate limits, per integration
        self.fire_step = store_escalation.fire_step  # the one unit of work a step runs
        # Outcomes of step runs in this process (for /metrics, and for tests to await).
        self.step_outcomes = {"fired": 0, "stale": 0, "failed": 0}

    def schedule(self, timers: Iterable[Timer]) -> None:
        """Put escalation timers into Redis (best effort: the reconciler heals failures)."""
        if self.timers is not None:
            self.timers.schedule_many("escalation", step_jobs(timers))

    def unschedule(self, job_ids: Iterable[str]) -> None:
        """Remove escalation timers (best effort: a stale job finds nothing to do)."""
        if self.timers is not None:
            self.timers.remove_many("escalation", list(job_ids))

    def arm(self, deadlines: Iterable[tuple[str, datetime]]) -> None:
        """Put heartbeat deadlines into Redis (best effort: the reconciler heals failures)."""
        if self.timers is not None:
            self.timers.schedule_many("escalation", deadline_jobs(deadlines))

    async def ping(self, heartbeat: Integration, now: datetime) -> datetime:
        """Record a heartbeat ping; return the new deadline."""
        deadline, followups = await self.db.run(store_heartbeats.ping, heartbeat, now)
        self.arm([(heartbeat.name, deadline)])
        self.apply(followups)
        return deadline

    async def check_heartbeat(self, name: str) -> None:
        """Open an incident if the heartbeat's deadline passed without a ping. A failure is
        logged; the deadline stays armed in the database and the reconciler fires it again."""
        heartbeat = self.directory.current.integrations.get(name)
        if heartbeat is None or heartbeat.type != "heartbeat":
            return
        try:
            result = await self.db.run(store_heartbeats.check, heartbeat,
                                       self.directory.current, self.clock())
        except Exception as error:  # the reconciler retries: the deadline is still armed
            log.warning("heartbeat check failed", extra={"heartbeat": name,
                                                         "error": repr(error)})
            return
        self.apply(result.followups)
        if result.opened:
            self.metrics.incidents.labels("opened").inc(len(result.opened))
            log.warning("heartbeat missed", extra={"heartbeat": name,
                                                   "incident": result.opened})

    def apply(self, followups: Followups) -> None:
        """Do in Redis what a committed transaction decided."""
        self.schedule(followups.timers)
        self.unschedule(followups.removed_jobs)
        if self.notifier is not None:
            self.notifier.schedule(followups.deliveries)
            self.notifier.unschedule(followups.removed_deliveries)

    def rate_limited(self, integration: Integration, now: datetime) -> timedelta | None:
        """Spend one of the integration's events; return how long to wait when over its rate."""
        limit, window = integration.rate_limit
        bucket, wait = ratelimit.take(self.buckets.get(integration.name), limit, window, now)
        self.buckets[integration.name] = bucket
        return wait

    async def ingest(self, integration: Integration, group: AlertGroup,
                     now: datetime) -> store.IngestResult:
        """Apply one Alertmanager delivery in one transaction; return the incidents it touched.

        Raises Unavailable when the database cannot take the write.
        """
        return await self._ingest(integration, len(group.alerts), store.ingest_group,
                                  integration.name, group, self.directory.current, now)

    async def ingest_event(self, integration: Integration, event: Event,
                           now: datetime) -> store.IngestResult:
        """Apply one Events v2 event in one transaction; return the incidents it touched."""
        return await self._ingest(integration, 1, store.ingest_event, integration.name, event,
                                  self.directory.current, now)

    async def _ingest(self, integration: Integration, alerts: int,
                      work: Callable[..., store.IngestResult], *args: Any) -> store.IngestResult:
        # A concurrent delivery for the same group or dedup_key can win the race to open the
        # incident (the unique index on open groups says so); the transaction then reruns
        # and joins it.
        for attempt in range(_RACE_RETRIES):
            try:
                result = await self.db.run(work, *args)
            except exc.IntegrityError:
                log.info("ingest race, retrying", extra={"attempt": attempt + 1})
                continue
            self.apply(result.followups)
            self.metrics.alerts.labels(integration.name, "accepted").inc(alerts)
            self.metrics.incidents.labels("opened").inc(len(result.opened))
            self.metrics.incidents.labels("resolved").inc(len(result.resolved))
            if result.steps_fired:  # paged with the incident's opening: on time by definition
                self.step_outcomes["fired"] += result.steps_fired
                self.metrics.steps.labels("fired").inc(result.steps_fired)
                for _ in range(result.steps_fired):
                    self.metrics.lateness.observe(0.0)
            if result.opened or result.resolved:
                log.info("ingested", extra={"integration": integration.name,
                                            "opened": result.opened,
                                            "resolved": result.resolved})
            return result
        raise Unavailable("concurrent deliveries kept conflicting; retry")

    async def acknowledge(self, incident_id: int, actor: str,
                          now: datetime) -> store.ActionResult:
        """Acknowledge and stop escalating. Raises NotFound or Conflict."""
        result = await self.db.run(store.acknowledge, incident_id, actor, now)
        self.apply(result.followups)
        if result.changed:
            self.metrics.incidents.labels("acknowledged").inc()
        return result

    async def resolve(self, incident_id: int, actor: str, now: datetime) -> store.ActionResult:
        """Resolve and stop escalating. Raises NotFound."""
        result = await self.db.run(store.resolve, incident_id, actor, now)
        self.apply(result.followups)
        if result.changed:
            self.metrics.incidents.labels("resolved").inc()
        return result

    async def run_step(self, incident_id: int, step: Step) -> bool:
        """Fire one escalation step, retrying failures; return whether it fired.

        A failing attempt is retried 3 times with exponential backoff (5, 10, 20 s); then
        the step is marked failed (timeline, /health) and the reconciler tries it again on
        its next pass, because the incident still points at it.
        """
        error: Exception | None = None
        for attempt in range(1, ESCALATION_ATTEMPTS + 1):
            now = self.clock()
            try:
                result = await self.db.run(self.fire_step, incident_id, step,
                                           self.directory.current, now)
            except Exception as failure:  # a pager retries, then reports
                error = failure
                log.warning("escalation step failed", extra={
                    "incident": incident_id, "level": step.level, "repeat": step.repeat,
                    "attempt": attempt, "error": repr(failure)})
                if attempt < ESCALATION_ATTEMPTS:
                    await asyncio.sleep(backoff(attempt, self.retry_base).total_seconds())
                continue
            self.apply(result.followups)
            outcome = "fired" if result.fired else "stale"
            self.step_outcomes[outcome] += 1
            self.metrics.steps.labels(outcome).inc()
            if result.fired and result.due_at is not None:
                self.metrics.lateness.observe(max(0.0, (now - result.due_at).total_seconds()))
            if not result.fired:
                log.info("stale escalation job did nothing", extra={
                    "incident": incident_id, "level": step.level, "repeat": step.repeat,
                    "reason": result.reason})
            return result.fired
        self.step_outcomes["failed"] += 1
        self.metrics.steps.labels("failed").inc()
        await self._mark_failed(incident_id, step, repr(error))
        return False

    async def _mark_failed(self, incident_id: int, step: Step, error: str) -> None:
        try:
            await self.db.run(store_escalation.mark_failed, incident_id, step,
                              ESCALATION_ATTEMPTS, error, self.clock())
        except Exception:  # the database is what failed; the reconciler retries
            log.error("could not record the failed step", exc_info=True,
                      extra={"incident": incident_id})
