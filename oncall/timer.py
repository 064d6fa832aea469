"""Timers: one AsyncIOScheduler with two Redis job stores, `escalation` and `notification`.

The only module that imports APScheduler. Every job is a module-level coroutine named by
text, takes only IDs, has a fixed id, `misfire_grace_time=None` (APScheduler's default of
1 s silently drops jobs that come due during a restart or a burst, and it is stored per job)
and `coalesce=True`, and is written over any job of the same id (`replace_existing`'s
effect: `write_many` sets the job whatever was there). Each store is owned by this one
scheduler.

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
from typing import Any, NamedTuple

from apscheduler.job import Job
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import RedisError
from redis.retry import Retry

from oncall.clock import system_clock
from oncall.config import RedisSettings

log = logging.getLogger(__name__)
STORES = ("escalation", "notification")
ESCALATION_JOB = "oncall.jobs:run_escalation_step"
NOTIFICATION_JOB = "oncall.jobs:deliver_notification"
HEARTBEAT_JOB = "oncall.jobs:check_heartbeat"
_BATCH = 1000  # jobs per MULTI/EXEC when writing many


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Yield lists of up to `size` items (itertools.batched arrives in Python 3.12)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class JobSpec(NamedTuple):
    """A date job to add or replace: fixed id, job function by name, id-only args, when."""

    job_id: str
    func: str
    args: Sequence[int | str]
    run_date: datetime


def heartbeat_job_id(name: str) -> str:
    """Return the fixed job id of a heartbeat's deadline (in the escalation store)."""
    return f"heartbeat:{name}"


def store_keys(key_prefix: str, store: str) -> tuple[str, str]:
    """Return the Redis keys (jobs hash, run-times sorted set) of a job store."""
    return f"{key_prefix}:{store}:jobs", f"{key_prefix}:{store}:run_times"


# A job due sooner than URGENT is written at once; one due later may wait COALESCE.
URGENT = timedelta(seconds=1)
COALESCE = timedelta(milliseconds=20)


class Timers:
    """The scheduler and its stores; job-store errors are logged and reported, not raised."""

    def __init__(self, settings: RedisSettings) -> None:
        timeout = settings.socket_timeout.total_seconds()
        connect: dict[str, Any] = {
            "host": settings.host, "port": settings.port,
            "password": settings.password or None, "socket_timeout": timeout,
            "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1),
        }
        self.stores: dict[str, RedisJobStore] = {}
        for name in STORES:
            jobs_key, run_times_key = store_keys(settings.key_prefix, name)
            self.stores[name] = RedisJobStore(db=settings.db, jobs_key=jobs_key,
                                              run_times_key=run_times_key, **connect)
        self._wakeup_pending = False
        self._job_states: dict[tuple[str, int], dict[str, Any]] = {}  # see _job_state
        # Job changes waiting for `flush`: (store, jobs to write, job ids to remove).
        self._queued: list[tuple[str, list[JobSpec], list[str]]] = []
        self._flush_pending = False  # a flush is due on the next loop iteration
        self._flush_later: asyncio.TimerHandle | None = None  # ... or at the window's end
        self.marker_key = f"{settings.key_prefix}:reconciled"
        self.scheduler = AsyncIOScheduler(
            jobstores=self.stores, timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            jobstore_retry_interval=1)

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

    def write_many(self, store: str, jobs: Iterable[JobSpec]) -> int:
        """Add or replace date jobs, a MULTI/EXEC of up to 1,000 at a time; return how many
        were written. Raises RedisError when Redis refuses (the jobs written so far stay).

        Writes what `add_job` writes (the pickled job state in the jobs hash, its run time in
        the sorted set), the pair always together, without add_job's per-job existence
        check and scheduler wake-up: one round trip per batch instead of about six per job.
        Safe to call from a worker thread; call `wake_soon` afterwards on the loop.
        """
        jobstore = self.stores[store]
        written = 0
        for batch in batched(jobs, _BATCH):
            with jobstore.redis.pipeline(transaction=True) as pipe:
                self._queue_writes(pipe, jobstore, batch)
                pipe.execute()
            written += len(batch)
        return written

    def _queue_writes(self, pipe: Pipeline, jobstore: RedisJobStore,
                      jobs: Sequence[JobSpec]) -> None:
        states, run_times = {}, {}
        for spec in jobs:
            state = {**self._job_state(spec), "id": spec.job_id, "args": tuple(spec.args),
                     "trigger": DateTrigger(spec.run_date, timezone=UTC),
                     "next_run_time": spec.run_date}
            states[spec.job_id] = pickle.dumps(state, jobstore.pickle_protocol)
            run_times[spec.job_id] = datetime_to_utc_timestamp(spec.run_date)
        pipe.hset(jobstore.jobs_key, mapping=states)
        pipe.zadd(jobstore.run_times_key, run_times)

    def _job_state(self, spec: JobSpec) -> dict[str, Any]:
        """Return the pickled state of a date job of the spec's function, built once per
        function and number of arguments: building a `Job` checks the function's signature
        with `inspect`, which cost more than the rest of writing the job. The caller sets
        the id, args, trigger and run time."""
        key = (spec.func, len(spec.args))
        state = self._job_states.get(key)
        if state is None:
            job = Job(self.scheduler, id=spec.job_id, func=spec.func, args=tuple(spec.args),
                      kwargs={}, trigger=DateTrigger(spec.run_date, timezone=UTC),
                      executor="default", misfire_grace_time=None, coalesce=True,
                      max_instances=1, next_run_time=spec.run_date)
            state = self._job_states[key] = job.__getstate__()
        return state

    def schedule_many(self, store: str, jobs: Sequence[JobSpec]) -> None:
        """Add or replace jobs, with the other changes asked for in this loop iteration
        (see `flush`), then wake the scheduler if it would look too late. Jobs all due
        later than URGENT may wait up to COALESCE for others to share their write."""
        if jobs:
            self._queued.append((store, list(jobs), []))
            soonest = min(spec.run_date for spec in jobs)
            self._flush_soon(urgent=soonest - system_clock() < URGENT)

    def remove_many(self, store: str, job_ids: Sequence[str]) -> None:
        """Remove jobs (missing ones are fine), with the other changes asked for in this
        loop iteration (see `flush`). A job left behind finds nothing to do when it fires;
        still, an acknowledged incident's timers leave Redis at once."""
        if job_ids:
            self._queued.append((store, [], list(job_ids)))
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
        """Write the queued changes, in order, one MULTI/EXEC per store.

        Requests that finish together (a group commit answers up to 32 at once) share one
        round trip: a synchronous pipeline per request cost a seventh of the event loop's
        time when opening incidents. A job due within URGENT is written on the next loop
        iteration, with everything queued before it, and so is a removal; a job due later
        (a level-2 step ten minutes away) waits up to COALESCE so that more requests share
        the round trip, during which the loop sits blocked on Redis (about 6% less CPU per
        new incident in alternating runs). A crash in between loses timers the reconciler
        rebuilds from the database, as after any Redis outage. A refusal is logged, not
        raised: the reconciler heals it.
        """
        self._flush_pending = False
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        queued, self._queued = self._queued, []
        earliest: datetime | None = None
        for store in {name for name, _, _ in queued}:
            jobstore = self.stores[store]
            changes = [(jobs, removed) for name, jobs, removed in queued if name == store]
            try:
                with jobstore.redis.pipeline(transaction=True) as pipe:
                    for jobs, removed in changes:
                        for batch in batched(jobs, _BATCH):
                            self._queue_writes(pipe, jobstore, batch)
                        for batch in batched(removed, _BATCH):
                            pipe.hdel(jobstore.jobs_key, *batch)
                            pipe.zrem(jobstore.run_times_key, *batch)
                    pipe.execute()
            except (RedisError, OSError) as error:
                log.warning("could not update jobs", extra={
                    "store": store, "written": sum(len(j) for j, _ in changes),
                    "removed": sum(len(r) for _, r in changes), "error": str(error)})
                continue
            for jobs, _ in changes:
                for spec in jobs:
                    if earliest is None or spec.run_date < earliest:
                        earliest = spec.run_date
        if earliest is not None and self.scheduler.running and self._wakes_too_late(earliest):
            self.wakeup()

    def _wakes_too_late(self, run_date: datetime) -> bool:
        """Return whether the scheduler's planned wake-up comes after `run_date` (or none is
        planned), i.e. whether it must look at its stores again to see the new job.

        Reads AsyncIOScheduler's timer handle (`_timeout`, APScheduler 3.x; the version is
        pinned). Without it this answers True: a wake-up too many costs four round trips, a
        wake-up too few would delay the job until the watchdog's next one (1 s).
        """
        handle = getattr(self.scheduler, "_timeout", None)
        if handle is None or handle.cancelled():
            return True
        loop = asyncio.get_running_loop()
        due_in = (run_date - system_clock()).total_seconds()
        return bool(handle.when() > loop.time() + due_in)

    def wake_soon(self) -> None:
        """Wake the scheduler once on the next loop iteration, however many callers ask
        before it runs (a wake-up costs four Redis round trips)."""
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
        """Leave a key saying the stores were reconciled; raises RedisError."""
        self.stores["escalation"].redis.set(self.marker_key, b"1")

    def lost_since_reconcile(self) -> bool:
        """Return whether Redis lost what it held since the last mark (flushed, or restarted
        without persistence); raises RedisError when Redis is unreachable."""
        return not self.stores["escalation"].redis.exists(self.marker_key)

    def pending_counts(self) -> dict[str, int]:
        """Return the number of jobs per store; raises RedisError when Redis is unreachable."""
        return {name: int(store.redis.zcard(store.run_times_key))
                for name, store in self.stores.items()}

    def close(self) -> None:
        if self._queued:
            self.flush()
        for store in self.stores.values():
            store.redis.close()
