"""Timers: one AsyncIOScheduler with two Redis job stores, `escalation` and `notification`.

The only module that imports APScheduler. Every job is a module-level coroutine named by
text (`oncall.timers.jobs`), takes only IDs, has a fixed id, `misfire_grace_time=None`
(APScheduler's default of 1 s silently drops jobs that come due during a restart or a
burst, and it is stored per job) and `coalesce=True`, and is written over any job of the
same id (`replace_existing`'s effect: a write sets the job whatever was there). Each store
is owned by this one scheduler.

Times come in on the service's clock. APScheduler runs on the wall clock, so a job's run
time is the wall-clock instant at which the service's clock reaches its due time: the
same instant on the system clock, and on a test's fixed clock "that far from now".

Redis is reached with the synchronous client APScheduler uses, so it gets short timeouts and
one immediate retry (for a pooled connection that died with a Redis restart): redis-py's
default retry policy sleeps between attempts, which would block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import RedisError
from redis.retry import Retry
from redis.typing import EncodableT

from oncall.clock import Clock, system_clock
from oncall.settings import RedisSettings
from oncall.timers.followups import ESCALATION, STORES, Followups, JobSpec

log = logging.getLogger(__name__)
_BATCH = 1000  # jobs per MULTI/EXEC when writing many
# The marker's value names the layout of the jobs in the stores (their functions' paths):
# a store written under another one is rebuilt whole at the next reconcile.
JOBS_LAYOUT = b"2"
# A job due sooner than URGENT is written at once; one due later may wait COALESCE.
URGENT = timedelta(seconds=1)
COALESCE = timedelta(milliseconds=20)


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Yield lists of up to `size` items (itertools.batched arrives in Python 3.12)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def store_keys(key_prefix: str, store: str) -> tuple[str, str]:
    """Return the Redis keys (jobs hash, run-times sorted set) of a job store."""
    return f"{key_prefix}:{store}:jobs", f"{key_prefix}:{store}:run_times"


class Timers:
    """The scheduler and its stores; job-store errors are logged and reported, not raised."""

    def __init__(self, settings: RedisSettings, clock: Clock) -> None:
        self.clock = clock
        timeout = settings.socket_timeout.total_seconds()
        connect: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "password": settings.password or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 1),
        }
        self.stores: dict[str, RedisJobStore] = {}
        for name in STORES:
            jobs_key, run_times_key = store_keys(settings.key_prefix, name)
            self.stores[name] = RedisJobStore(
                db=settings.db, jobs_key=jobs_key, run_times_key=run_times_key, **connect
            )
        self._wakeup_pending = False
        self._job_states: dict[tuple[str, int], dict[str, Any]] = {}  # see _job_state
        # Job changes waiting for `flush`: (jobs to write, (store, job id) to remove).
        self._queued: list[tuple[list[JobSpec], list[tuple[str, str]]]] = []
        self._flush_pending = False  # a flush is due on the next loop iteration
        self._flush_later: asyncio.TimerHandle | None = None  # ... or at the window's end
        self.marker_key = f"{settings.key_prefix}:reconciled"
        self.scheduler = AsyncIOScheduler(
            jobstores=self.stores,
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            jobstore_retry_interval=1,
        )

    def start(self) -> None:
        self.scheduler.start()

    def pause(self) -> None:
        """Stop starting jobs (at once: pause is synchronous); running jobs go on."""
        if self.scheduler.running:
            self.scheduler.pause()

    async def shutdown(self) -> None:
        """Stop the scheduler; return once it has stopped starting jobs.

        AsyncIOScheduler.shutdown only schedules the shutdown on the event loop, so the
        scheduler could still start due jobs after it returned.
        """
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        while self.scheduler.running:
            await asyncio.sleep(0)

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def _wall(self, due: datetime) -> datetime:
        """Return the wall-clock instant at which the service's clock reaches `due`."""
        if self.clock is system_clock:
            return due
        return due - self.clock() + system_clock()

    def wakeup(self) -> None:
        """Make the scheduler look for due jobs now.

        APScheduler 3.11.3 stops waking up when a job-store call fails inside its wake-up
        (`get_next_run_time` is outside its error handling); calling this periodically
        restarts it.
        """
        if self.scheduler.running:
            try:
                self.scheduler.wakeup()
            except Exception:  # the stall above: log it, the next call tries again
                log.warning("scheduler wake-up failed", exc_info=True)

    def write_many(self, jobs: Iterable[JobSpec]) -> int:
        """Add or replace date jobs, a MULTI/EXEC of up to `_BATCH` at a time per store;
        return how many were written. Raises RedisError when Redis refuses (the jobs
        written so far stay).

        Writes what `add_job` writes (the pickled job state in the jobs hash, its run time in
        the sorted set), the pair always together, without add_job's per-job existence
        check and scheduler wake-up: one round trip per batch instead of several per job.
        Safe to call from a worker thread; call `wake_soon` afterwards on the loop.
        """
        written = 0
        for batch in batched(jobs, _BATCH):
            with self.stores[ESCALATION].redis.pipeline(transaction=True) as pipe:
                self._queue_writes(pipe, batch)
                pipe.execute()
            written += len(batch)
        return written

    def _queue_writes(self, pipe: Pipeline, jobs: Sequence[JobSpec]) -> None:
        """Queue the writes of `jobs` (of any stores) on `pipe`."""
        states: dict[str, dict[EncodableT, EncodableT]] = {}
        run_times: dict[str, dict[str, float]] = {}
        for spec in jobs:
            jobstore = self.stores[spec.store]
            run_date = self._wall(spec.run_date)
            state = {
                **self._job_state(spec.func, len(spec.args)),
                "id": spec.job_id,
                "args": tuple(spec.args),
                "trigger": DateTrigger(run_date, timezone=UTC),
                "next_run_time": run_date,
            }
            states.setdefault(spec.store, {})[spec.job_id] = pickle.dumps(
                state, jobstore.pickle_protocol
            )
            run_times.setdefault(spec.store, {})[spec.job_id] = datetime_to_utc_timestamp(run_date)
        for store, mapping in states.items():
            jobstore = self.stores[store]
            pipe.hset(jobstore.jobs_key, mapping=mapping)
            pipe.zadd(jobstore.run_times_key, run_times[store])

    def _job_state(self, func: str, arity: int) -> dict[str, Any]:
        """Return the pickled state of a date job of `func` with `arity` arguments, built
        once per function: building a `Job` checks the function's signature with
        `inspect`, which costs more than the rest of writing the job. The caller sets the
        id, args, trigger and run time."""
        state = self._job_states.get((func, arity))
        if state is None:
            placeholder = datetime(2000, 1, 1, tzinfo=UTC)
            job = Job(
                self.scheduler,
                id="placeholder",
                func=func,
                args=(0,) * arity,
                kwargs={},
                trigger=DateTrigger(placeholder, timezone=UTC),
                executor="default",
                misfire_grace_time=None,
                coalesce=True,
                max_instances=1,
                next_run_time=placeholder,
            )
            state = self._job_states[(func, arity)] = job.__getstate__()
        return state

    def _queue_removals(self, pipe: Pipeline, removed: Sequence[tuple[str, str]]) -> None:
        by_store: dict[str, list[str]] = {}
        for store, job_id in removed:
            by_store.setdefault(store, []).append(job_id)
        for store, job_ids in by_store.items():
            jobstore = self.stores[store]
            for batch in batched(job_ids, _BATCH):
                pipe.hdel(jobstore.jobs_key, *batch)
                pipe.zrem(jobstore.run_times_key, *batch)

    def apply(self, followups: Followups) -> None:
        """Write and remove the timers a committed transaction decided (see `flush`)."""
        self.schedule(followups.jobs)
        self.remove(followups.removed)

    def schedule(self, jobs: Sequence[JobSpec]) -> None:
        """Add or replace jobs, with the other changes asked for in this loop iteration
        (see `flush`), then wake the scheduler if it would look too late. Jobs all due
        later than URGENT may wait up to COALESCE for others to share their write."""
        if jobs:
            self._queued.append((list(jobs), []))
            soonest = min(spec.run_date for spec in jobs)
            self._flush_soon(urgent=soonest - self.clock() < URGENT)

    def remove(self, removed: Sequence[tuple[str, str]]) -> None:
        """Remove jobs by (store, job id); missing ones are fine. A job left behind finds
        nothing to do when it fires; still, a closed incident's timers leave Redis at once."""
        if removed:
            self._queued.append(([], list(removed)))
            self._flush_soon(urgent=True)

    def _flush_soon(self, urgent: bool) -> None:
        if self._flush_pending:
            return
        loop = asyncio.get_running_loop()
        if urgent:
            if self._flush_later is not None:
                self._flush_later.cancel()
                self._flush_later = None
            self._flush_pending = True
            loop.call_soon(self.flush)
        elif self._flush_later is None:
            self._flush_later = loop.call_later(COALESCE.total_seconds(), self.flush)

    def flush(self) -> None:
        """Write the queued changes, in order, in one MULTI/EXEC.

        Requests that finish together (a group commit answers many at once) share one
        round trip. A job due within URGENT is written on the next loop iteration, with
        everything queued before it, and so is a removal; a job due later (a level-2 step
        minutes away) waits up to COALESCE so that more requests share the round trip.
        A crash in between loses timers the reconciler rebuilds from the database, as
        after any Redis outage. A refusal is logged, not raised: the reconciler heals it.
        """
        self._flush_pending = False
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        queued, self._queued = self._queued, []
        if not queued:
            return
        try:
            with self.stores[ESCALATION].redis.pipeline(transaction=True) as pipe:
                for jobs, removed in queued:
                    for batch in batched(jobs, _BATCH):
                        self._queue_writes(pipe, batch)
                    self._queue_removals(pipe, removed)
                pipe.execute()
        except (RedisError, OSError) as error:
            log.warning(
                "could not update jobs",
                extra={
                    "written": sum(len(j) for j, _ in queued),
                    "removed": sum(len(r) for _, r in queued),
                    "error": str(error),
                },
            )
            return
        earliest = min((spec.run_date for jobs, _ in queued for spec in jobs), default=None)
        if earliest is not None and self.scheduler.running and self._wakes_too_late(earliest):
            self.wakeup()

    def _wakes_too_late(self, run_date: datetime) -> bool:
        """Return whether the scheduler's planned wake-up comes after `run_date` (or none is
        planned), i.e. whether it must look at its stores again to see the new job.

        Reads AsyncIOScheduler's timer handle (`_timeout`, APScheduler 3.x; the version is
        pinned). Without it this answers True: a wake-up too many costs a few round trips,
        a wake-up too few would delay the job until the watchdog's next one.
        """
        handle = getattr(self.scheduler, "_timeout", None)
        if handle is None or handle.cancelled():
            return True
        loop = asyncio.get_running_loop()
        due_in = (run_date - self.clock()).total_seconds()
        return bool(handle.when() > loop.time() + due_in)

    def wake_soon(self) -> None:
        """Wake the scheduler once on the next loop iteration, however many callers ask
        before it runs (a wake-up costs several Redis round trips)."""
        if self._wakeup_pending:
            return
        self._wakeup_pending = True

        def wake() -> None:
            self._wakeup_pending = False
            self.wakeup()

        asyncio.get_running_loop().call_soon(wake)

    def job_ids(self, store: str) -> set[str]:
        """Return the ids of the jobs in a store; raises RedisError when Redis is unreachable."""
        jobstore = self.stores[store]
        return {key.decode() for key in jobstore.redis.hkeys(jobstore.jobs_key)}

    def mark_reconciled(self) -> None:
        """Leave a key saying the stores were reconciled, under this jobs layout; raises
        RedisError."""
        self.stores[ESCALATION].redis.set(self.marker_key, JOBS_LAYOUT)

    def lost_since_reconcile(self) -> bool:
        """Return whether Redis lost what it held since the last mark (flushed, or restarted
        without persistence), or holds jobs of another layout; raises RedisError when
        Redis is unreachable."""
        return bool(self.stores[ESCALATION].redis.get(self.marker_key) != JOBS_LAYOUT)

    def pending_counts(self) -> dict[str, int]:
        """Return the number of jobs per store; raises RedisError when Redis is unreachable."""
        return {
            name: int(store.redis.zcard(store.run_times_key)) for name, store in self.stores.items()
        }

    def close(self) -> None:
        if self._queued:
            self.flush()
        for store in self.stores.values():
            store.redis.close()
