"""The reconciler: makes Redis hold exactly the timers the database says are pending.

Runs at start-up and every `reconcile_interval`. Each domain that has timers is a source:
it says, from the database, which jobs must exist (by job id) and builds their jobs.
Timers Redis lost (flush, restart, outage, a crash between commit and scheduling, a step
that failed) are recreated; overdue ones run at once. Jobs nothing expects are removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from oncall.clock import Clock
from oncall.metrics import Metrics
from oncall.timers.followups import STORES, JobSpec
from oncall.timers.scheduler import Timers

log = logging.getLogger(__name__)
WATCHDOG_INTERVAL = 1.0
REBUILD_CHUNK = 10_000  # missing timers turned into jobs and written at a time


class TimerSource(Protocol):
    """A domain's timers, as its database rows say."""

    job_store: str  # the job store they live in

    async def expected(self) -> Mapping[str, Any]:
        """Return what each expected job is built from, by job id."""

    def jobs(self, items: Iterable[Any]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""


@dataclass
class ReconcileStatus:
    """The last pass (its counts are in Metrics: oncall_reconcile_runs, _repairs)."""

    last_run: datetime | None = None
    last_error: str | None = None


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

    async def run_once(self) -> tuple[int, int]:
        """Reconcile once; return (timers recreated, stale jobs removed). Raises on failure."""
        async with self._lock:
            return await self._run_once()

    async def _run_once(self) -> tuple[int, int]:
        now = self.clock()
        try:
            # Redis first: a job scheduled after this read is then in the database read
            # below, so it is never mistaken for a stale one and removed. In a worker
            # thread: with a large backlog the reply is megabytes, and the event loop keeps
            # answering meanwhile.
            rebuild = await asyncio.to_thread(self.timers.lost_since_reconcile)
            present = {
                store: await asyncio.to_thread(self.timers.job_ids, store) for store in STORES
            }
            expected = [(source, await source.expected()) for source in self.sources]
        except Exception as error:
            self.status.last_error = f"{type(error).__name__}: {error}"
            self.metrics.reconciles.labels("error").inc()
            raise
        recreated: dict[str, int] = {}
        overdue = 0
        for source, wanted in expected:
            # A store Redis emptied, or one of another jobs layout, is written whole.
            missing = [
                item
                for job_id, item in wanted.items()
                if rebuild or job_id not in present[source.job_store]
            ]
            overdue += await self._rebuild(source, missing, now)
            recreated[type(source).__name__] = len(missing)
        stale = [
            (store, job_id)
            for store in STORES
            for job_id in sorted(
                present[store]
                - {
                    job_id
                    for source, wanted in expected
                    if source.job_store == store
                    for job_id in wanted
                }
            )
        ]
        self.timers.remove(stale)
        await asyncio.to_thread(self.timers.mark_reconciled)
        total = sum(recreated.values())
        self.status.last_run = now
        self.status.last_error = None
        self.metrics.reconciles.labels("ok").inc()
        self.metrics.repairs.inc(total)
        if total or stale:
            log.info(
                "reconciled timers",
                extra={"recreated": recreated, "removed": len(stale), "overdue": overdue},
            )
        return total, len(stale)

    async def _rebuild(self, source: TimerSource, items: list[Any], now: datetime) -> int:
        """Write the jobs of missing timers from a worker thread, a chunk at a time (so that
        a rebuild after a flush neither blocks the event loop nor builds every job at once);
        return how many were overdue. Raises RedisError."""
        overdue = 0
        for start in range(0, len(items), REBUILD_CHUNK):
            jobs = await asyncio.to_thread(source.jobs, items[start : start + REBUILD_CHUNK])
            overdue += sum(job.run_date <= now for job in jobs)
            await asyncio.to_thread(self.timers.write_many, jobs)
            self.timers.wake_soon()
        return overdue

    async def loop(self, interval: timedelta) -> None:
        """Reconcile every `interval` until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(interval.total_seconds())
            try:
                await self.run_once()
            except Exception as error:  # Redis or the database is down
                log.warning("reconcile failed", extra={"error": repr(error)})

    async def watchdog(self) -> None:
        """Every second, wake the scheduler (so a stalled APScheduler wake-up cannot last),
        and reconcile at once when Redis lost its keys (a flush, a restart without
        persistence) rather than at the next periodic pass: until then no timer in it
        would fire."""
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            self.timers.wakeup()
            try:
                lost = await asyncio.to_thread(self.timers.lost_since_reconcile)
            except Exception:  # Redis unreachable: the periodic pass and /health deal with it
                continue
            if lost:
                log.warning("Redis lost its timers; reconciling now")
                try:
                    await self.run_once()
                except Exception as error:
                    log.warning("reconcile failed", extra={"error": repr(error)})
