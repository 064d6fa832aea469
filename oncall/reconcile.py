"""The reconciler: makes Redis hold exactly the timers the database says are pending.

Runs at start-up and every `reconcile_interval`. Timers Redis lost (flush, restart, outage, a
crash between commit and scheduling, a step that failed) are recreated; overdue ones run at
once. Jobs of incidents that are no longer pending on that step are removed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from oncall import store_escalation, store_heartbeats, store_notify
from oncall.clock import Clock, to_micros
from oncall.db import Database
from oncall.directory import DirectoryHolder
from oncall.notifier import delivery_jobs
from oncall.service import Service, step_jobs
from oncall.timer import JobSpec, Timers, heartbeat_job_id

log = logging.getLogger(__name__)
WATCHDOG_INTERVAL = 1.0
REBUILD_CHUNK = 10_000  # missing steps turned into timers and written at a time


@dataclass
class ReconcileStatus:
    runs: int = 0
    repairs: int = 0  # timers recreated, over the process's life
    removed: int = 0  # stale jobs removed, over the process's life
    last_run: datetime | None = None
    last_error: str | None = None


class Reconciler:
    def __init__(self, db: Database, timers: Timers, service: Service,
                 directory: DirectoryHolder, clock: Clock) -> None:
        self.db = db
        self.timers = timers
        self.service = service
        self.directory = directory
        self.clock = clock
        self.status = ReconcileStatus()
        self._lock = asyncio.Lock()  # the periodic pass and a triggered one never overlap

    async def run_once(self) -> tuple[int, int]:
        """Reconcile once; return (timers recreated, stale jobs removed). Raises on failure."""
        async with self._lock:
            return await self._run_once()

    async def _run_once(self) -> tuple[int, int]:
        now = self.clock()
        try:
            # Redis first: a job scheduled after this read is then in the database read
            # below, so it is never mistaken for a stale one and removed.
            # In a worker thread: with 100,000 timers the reply is megabytes, and the
            # event loop keeps answering meanwhile.
            present_steps = await asyncio.to_thread(self.timers.job_ids, "escalation")
            present_deliveries = await asyncio.to_thread(self.timers.job_ids, "notification")
            steps = await self.db.run(store_escalation.pending_steps)
            attempts = await self.db.run(store_notify.pending_attempts)
            # Looked at here, in a worker thread: 100,000 of them hold the GIL in short runs.
            expected = await asyncio.to_thread(store_escalation.expected_steps, steps,
                                               self.directory.current)
            deliveries = await asyncio.to_thread(store_notify.deliveries_for, attempts)
            deadlines = await self.db.run(store_heartbeats.armed)
        except Exception as error:
            self.status.last_error = f"{type(error).__name__}: {error}"
            self.service.metrics.reconciles.labels("error").inc()
            raise
        missing = [step for job_id, step in expected.items() if job_id not in present_steps]
        await self._rebuild_steps(missing)
        # Heartbeat deadlines share the escalation store: expected too, never stale.
        armed = {heartbeat_job_id(name): (name, due) for name, due in deadlines}
        missing_deadlines = [d for job_id, d in armed.items() if job_id not in present_steps]
        self.service.arm(missing_deadlines)
        stale = present_steps - expected.keys() - armed.keys()
        self.service.unschedule(stale)

        expected_deliveries = {d.job_id: d for d in deliveries}
        missing_deliveries = [d for job_id, d in expected_deliveries.items()
                              if job_id not in present_deliveries]
        stale_deliveries = present_deliveries - expected_deliveries.keys()
        # Pending rows without a job: their jobs, due when the row says (overdue ones at once).
        await self._rebuild("notification", delivery_jobs(missing_deliveries))
        self.timers.remove_many("notification", sorted(stale_deliveries))

        await asyncio.to_thread(self.timers.mark_reconciled)
        recreated = len(missing) + len(missing_deliveries) + len(missing_deadlines)
        removed = len(stale) + len(stale_deliveries)
        self.status.runs += 1
        self.status.repairs += recreated
        self.service.metrics.reconciles.labels("ok").inc()
        self.service.metrics.repairs.inc(recreated)
        self.status.removed += removed
        self.status.last_run = now
        self.status.last_error = None
        if recreated or removed:
            now_micros = to_micros(now)
            log.info("reconciled timers", extra={
                "steps_recreated": len(missing), "steps_removed": len(stale),
                "deliveries_recreated": len(missing_deliveries),
                "deliveries_removed": len(stale_deliveries),
                "overdue": sum(due <= now_micros for *_, due in missing)})
        return recreated, removed

    async def _rebuild_steps(self, steps: list[store_escalation.Pending]) -> None:
        """Write the timers of missing steps, a chunk at a time: after a flush all 100,000
        are missing, and their timers and jobs built at once took memory the service's
        150 MB budget did not have. Raises RedisError."""
        for start in range(0, len(steps), REBUILD_CHUNK):
            jobs = await asyncio.to_thread(self._step_jobs, steps[start:start + REBUILD_CHUNK])
            await self._rebuild("escalation", jobs)

    def _step_jobs(self, steps: list[store_escalation.Pending]) -> list[JobSpec]:
        return step_jobs(store_escalation.timers_for(steps, self.directory.current))

    async def _rebuild(self, store: str, jobs: list[JobSpec]) -> None:
        """Write many jobs from a worker thread, in batches, so that a rebuild after a flush
        neither blocks the event loop nor costs a round trip per job. Raises RedisError."""
        if jobs:
            await asyncio.to_thread(self.timers.write_many, store, jobs)
            self.timers.wake_soon()

    async def loop(self, interval: timedelta) -> None:
        """Reconcile every `interval` until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(interval.total_seconds())
            try:
                await self.run_once()
            except Exception as error:  # Redis or the database is down
                log.warning("reconcile failed", extra={"error": repr(error)})


async def watchdog(timers: Timers, reconciler: Reconciler) -> None:
    """Every second, wake the scheduler (so a stalled APScheduler wake-up cannot last), and
    reconcile at once when Redis lost its keys (a flush, a restart without persistence)
    rather than at the next periodic pass: until then no timer in it would fire."""
    while True:
        await asyncio.sleep(WATCHDOG_INTERVAL)
        timers.wakeup()
        try:
            lost = await asyncio.to_thread(timers.lost_since_reconcile)
        except Exception:  # Redis unreachable: the periodic pass and /health deal with it
            continue
        if lost:
            log.warning("Redis lost its timers; reconciling now")
            try:
                await reconciler.run_once()
            except Exception as error:
                log.warning("reconcile failed", extra={"error": repr(error)})
