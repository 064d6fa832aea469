"""The reconciler: makes Redis hold exactly the timers the database says are pending.

Runs at start-up, every `reconcile_interval`, and at once when the Redis probe says Redis
answers again or lost its jobs. Each domain that has timers is a source: it says, from the
database, which jobs must exist (by job id) and builds their jobs. Timers Redis lost
(flush, restart, outage, changes dropped while it was unhealthy, a crash between commit and
scheduling, a step that failed) are recreated, and so is a job whose run time is not its
timer's due time (written by another deployment sharing the key prefix, or left by an
older due time); overdue ones run at once. Jobs nothing expects are removed.

While Redis is unhealthy the sweep stands in for the scheduler: every SWEEP_INTERVAL it
asks each source for what the database says is due and starts those jobs directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.exceptions import RedisError

from oncall.clock import Clock
from oncall.metrics import Metrics
from oncall.timers.followups import STORES, JobSpec
from oncall.timers.scheduler import Timers

log = logging.getLogger(__name__)
REBUILD_CHUNK = 10_000  # missing timers turned into jobs and written at a time
SWEEP_INTERVAL = 1.0  # seconds between database sweeps while Redis is unhealthy
SWEEP_LIMIT = 1000  # due timers started per source and sweep
# A job whose run time is this far from its timer's due time is written again.
RUN_TIME_SLACK = 1.0


class TimerSource(Protocol):
    """A domain's timers, as its database rows say."""

    job_store: str  # the job store they live in

    async def expected(self) -> Mapping[str, Any]:
        """Return what each expected job is built from, by job id."""

    def jobs(self, items: Iterable[Any]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""

    async def due(self, now: datetime, limit: int) -> list[JobSpec]:
        """Return the jobs of up to `limit` timers due by `now`, soonest first."""


@dataclass
class ReconcileStatus:
    """The last pass (its counts are in Metrics: oncall_reconcile_runs, _repairs)."""

    last_run: datetime | None = None
    last_error: str | None = None
    # Timers the last successful pass recreated, by source (Escalation, Notifier, ...).
    recreated: dict[str, int] = field(default_factory=dict)


class Reconciler:
    def __init__(
        self, timers: Timers, sources: Sequence[TimerSource], metrics: Metrics, clock: Clock
    ) -> None:
        self.timers = timers
        self.sources = sources
        self.metrics = metrics
        self.clock = clock
        self.status = ReconcileStatus()
        self._lock = asyncio.Lock()  # the periodic pass and a triggered one never overlap
        self.asked = asyncio.Event()  # set (on the loop) when a pass is wanted at once

    async def run_once(self) -> tuple[int, int]:
        """Reconcile once; return (timers recreated, stale jobs removed). Raises on failure."""
        async with self._lock:
            return await self._run_once()

    async def _run_once(self) -> tuple[int, int]:
        now = self.clock()
        # Cleared before reading: a change dropped during this pass asks for the next one.
        self.timers.lost = False
        try:
            if not self.timers.health.healthy:
                raise ConnectionError(f"Redis is unhealthy: {self.timers.health.error}")
            # Redis first: a job scheduled after this read is then in the database read
            # below, so it is never mistaken for a stale one and removed. In a worker
            # thread: with a large backlog the reply is megabytes, and the event loop keeps
            # answering meanwhile.
            rebuild = await asyncio.to_thread(self.timers.lost_since_reconcile)
            present = {
                store: await asyncio.to_thread(self.timers.run_times, store) for store in STORES
            }
            expected = [(source, await source.expected()) for source in self.sources]
        except Exception as error:
            self.timers.lost = True
            if isinstance(error, RedisError | OSError):
                self.timers.health.trip(error)
            self.status.last_error = f"{type(error).__name__}: {error}"
            self.metrics.reconciles.labels("error").inc()
            raise
        recreated: dict[str, int] = {}
        overdue = 0
        try:
            for source, wanted in expected:
                # A store Redis emptied, or one of another jobs layout, is written whole.
                missing = await asyncio.to_thread(
                    self._missing, source, wanted, present[source.job_store], rebuild
                )
                overdue += await self._rebuild(source, missing, now)
                recreated[type(source).__name__] = len(missing)
        except Exception:
            self.timers.lost = True
            raise
        stale = [
            (store, job_id)
            for store in STORES
            for job_id in sorted(
                present[store].keys()
                - {
                    job_id
                    for source, wanted in expected
                    if source.job_store == store
                    for job_id in wanted
                }
            )
        ]
        await asyncio.to_thread(self.timers.remove_now, stale)
        await asyncio.to_thread(self.timers.mark_reconciled)
        total = sum(recreated.values())
        self.status.last_run = now
        self.status.last_error = None
        self.status.recreated = recreated
        self.metrics.reconciles.labels("ok").inc()
        self.metrics.repairs.inc(total)
        if total or stale:
            log.info(
                "reconciled timers",
                extra={"recreated": recreated, "removed": len(stale), "overdue": overdue},
            )
        return total, len(stale)

    def _missing(
        self,
        source: TimerSource,
        wanted: Mapping[str, Any],
        present: Mapping[str, float],
        rebuild: bool,
    ) -> list[Any]:
        """Return the expected items whose job is absent or runs at another time than the
        timer is due (all of them when the store is to be rebuilt whole)."""
        if rebuild:
            return list(wanted.values())
        missing = []
        for job_id, item in wanted.items():
            run_time = present.get(job_id)
            if run_time is None:
                missing.append(item)
                continue
            (job,) = source.jobs([item])
            if abs(run_time - self.timers.wall_timestamp(job.run_date)) > RUN_TIME_SLACK:
                missing.append(item)
        return missing

    async def _rebuild(self, source: TimerSource, items: list[Any], now: datetime) -> int:
        """Write the jobs of missing timers from a worker thread, a chunk at a time (so that
        a rebuild after a flush neither blocks the event loop nor builds every job at once);
        return how many were overdue. Raises RedisError."""
        overdue = 0
        for start in range(0, len(items), REBUILD_CHUNK):
            jobs = await asyncio.to_thread(source.jobs, items[start : start + REBUILD_CHUNK])
            overdue += sum(job.run_date <= now for job in jobs)
            await asyncio.to_thread(self.timers.write_many, jobs)
        return overdue

    async def loop(self, interval: timedelta) -> None:
        """Reconcile every `interval`, and at once when asked (`asked`: Redis answers again
        or lost its jobs), until cancelled; failures are logged and retried."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.asked.wait(), interval.total_seconds())
            self.asked.clear()
            if not self.timers.health.healthy:
                continue  # the probe asks again when Redis answers
            try:
                await self.run_once()
            except Exception as error:  # Redis or the database is down
                log.warning("reconcile failed", extra={"error": repr(error)})

    async def sweep(self, start: Callable[[JobSpec], None]) -> None:
        """While Redis is unhealthy, every SWEEP_INTERVAL, start the jobs of every timer the
        database says is due (`start`); the claims in the database keep a timer that also
        fires from Redis later from acting twice. Runs until cancelled."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            if self.timers.health.healthy:
                continue
            now = self.clock()
            for source in self.sources:
                try:
                    due = await source.due(now, SWEEP_LIMIT)
                except Exception as error:  # the database is down too: try again
                    log.warning("sweep failed", extra={"error": repr(error)})
                    continue
                for job in due:
                    start(job)
                if due:
                    self.metrics.swept.inc(len(due))
