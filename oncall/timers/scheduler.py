"""Timers: one APScheduler `BackgroundScheduler` with two Redis job stores, `escalation` and
`notification`, and everything that talks to Redis, none of it on the event loop.

The only module that imports APScheduler. Every job is a module-level function named by
text (`oncall.timers.jobs`), takes only IDs (the last one names the deployment that wrote
it), has a fixed id, `misfire_grace_time=None` (APScheduler's default of 1 s silently
drops jobs that come due during a restart or a burst, and it is stored per job) and
`coalesce=True`, and is written over any job of the same id. Each store is owned by this
one scheduler.

RedisJobStore is synchronous, so three threads of this module do every Redis call: the
scheduler's own (its wake-ups and `get_due_jobs`), a writer that takes the timer changes
the event loop queues and writes them in one MULTI/EXEC, and a probe that checks Redis
every PROBE_INTERVAL. A failed or timed-out call trips `health` at once; while it is
tripped the queue is dropped rather than kept (the reconciler rebuilds every timer from
the database when Redis answers again) and the database sweep fires what falls due.

Times come in on the service's clock. APScheduler runs on the wall clock, so a job's run
time is the wall-clock instant at which the service's clock reaches its due time.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from threading import TIMEOUT_MAX
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import datetime_to_utc_timestamp
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import RedisError
from redis.retry import Retry
from redis.typing import EncodableT

from oncall.clock import Clock, system_clock
from oncall.settings import RedisSettings
from oncall.timers.followups import STORES, Followups, JobSpec
from oncall.timers.health import RedisHealth

log = logging.getLogger(__name__)
_BATCH = 1000  # jobs per MULTI/EXEC when writing many
# The marker's value names the layout of the jobs in the stores (their functions' paths
# and arguments): a store written under another one is rebuilt whole at the next reconcile.
JOBS_LAYOUT = b"3"
# A job due sooner than URGENT is written at once; one due later may wait COALESCE.
URGENT = timedelta(seconds=1)
COALESCE = timedelta(milliseconds=20)
PROBE_INTERVAL = 1.0  # seconds between checks of Redis
_RETRY = 1.0  # seconds before the scheduler looks again after a failed pass
# Timer changes held for the writer at most; beyond it they are dropped and rebuilt by the
# reconciler, as during an outage, so a slow Redis cannot grow the queue without bound.
MAX_QUEUED = 100_000


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Yield lists of up to `size` items (itertools.batched arrives in Python 3.12)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def store_keys(key_prefix: str, store: str) -> tuple[str, str]:
    """Return the Redis keys (jobs hash, run-times sorted set) of a job store."""
    return f"{key_prefix}:{store}:jobs", f"{key_prefix}:{store}:run_times"


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]
    """A BackgroundScheduler that remembers when it next means to look at its stores, so a
    new job due before then wakes it and one due after does not (a wake-up costs several
    Redis round trips). `_process_jobs` is APScheduler 3.x's (the version is pinned)."""

    next_look = 0.0  # time.monotonic() of the next look; 0: look at once

    def __init__(self, gate: Callable[[], bool], **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate

    def _process_jobs(self) -> float | None:
        """Run due jobs while `gate()` says this process leads; return the seconds until
        the next look.

        The gate is asked on this thread before every pass: a leader paused (SIGSTOP) past
        its lease, whose event loop has not yet noticed, runs nothing when it resumes.
        An exception here would end the scheduler's thread (APScheduler handles errors of
        `get_due_jobs` only, not of removing a run job or of `get_next_run_time`), so a
        failure is logged and the scheduler looks again after RETRY.
        """
        wait: float | None
        if not self.gate():
            self.next_look = time.monotonic() + _RETRY
            return _RETRY
        try:
            wait = super()._process_jobs()
        except Exception:
            log.warning("the scheduler's pass failed; looking again shortly", exc_info=True)
            wait = _RETRY
        self.next_look = time.monotonic() + (TIMEOUT_MAX if wait is None else wait)
        return wait

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        """Remove a job; one already gone is fine: the writer thread may have removed it
        (its incident closed) between the scheduler's read and this removal."""
        with contextlib.suppress(JobLookupError):
            super().remove_job(job_id, jobstore)


# Drops a run time whose job has no state, only while it still has none (atomic in Redis).
_DROP_ORPHAN = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return redis.call('ZREM', KEYS[2], ARGV[1])
end
return 0
"""


class _JobStore(RedisJobStore):  # type: ignore[misc]
    """APScheduler's Redis job store, but for a due job whose state is gone.

    `get_due_jobs` reads the due ids, then their states, in two calls, and the writer thread
    may remove a job in between (its incident resolved). APScheduler would log the id as a
    job it cannot restore, with a traceback, and delete it by id, which by then may name a
    job written anew; here it is skipped, and its run time dropped only while it still has
    no state (a run time left without one would wake the scheduler at once, every time).
    `_reconstitute_jobs` is APScheduler 3.x's (the version is pinned)."""

    def _reconstitute_jobs(self, job_states: Iterable[tuple[Any, Any]]) -> list[Job]:
        found = []
        for job_id, state in job_states:
            if state is None:
                self.redis.eval(_DROP_ORPHAN, 2, self.jobs_key, self.run_times_key, job_id)
            else:
                found.append((job_id, state))
        jobs: list[Job] = super()._reconstitute_jobs(found)
        return jobs


class Timers:
    """The scheduler, its stores and the threads that reach Redis; no method called on the
    event loop waits for Redis."""

    def __init__(
        self,
        settings: RedisSettings,
        clock: Clock,
        deployment: str = "",
        health: RedisHealth | None = None,
    ) -> None:
        self.clock = clock
        self.deployment = deployment  # the last argument of every job this process writes
        self.health = health or RedisHealth()
        timeout = settings.socket_timeout.total_seconds()
        connect: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "password": settings.password or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # One immediate retry, for a pooled connection that died with a Redis restart;
            # redis-py's default policy sleeps between attempts.
            "retry": Retry(NoBackoff(), 1),
        }
        self.stores: dict[str, RedisJobStore] = {}
        for name in STORES:
            jobs_key, run_times_key = store_keys(settings.key_prefix, name)
            self.stores[name] = _JobStore(
                db=settings.db, jobs_key=jobs_key, run_times_key=run_times_key, **connect
            )
        # The writer's and the probe's own clients: a thread never shares a connection
        # with the scheduler's, so a call stuck in one does not hold the others' pool.
        self._writer_redis = RedisJobStore(db=settings.db, **connect).redis
        self._probe_redis = RedisJobStore(db=settings.db, **connect).redis
        self._job_states: dict[tuple[str, int], dict[str, Any]] = {}  # see _job_state
        # Job changes waiting for the writer: (jobs to write, (store, job id) to remove).
        self._queued: list[tuple[list[JobSpec], list[tuple[str, str]]]] = []
        self._queued_count = 0
        self._urgent = False
        self._lock = threading.Lock()
        self._wake_writer = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.dropped = 0  # timer changes dropped while Redis was unhealthy
        self.pending: dict[str, int] | None = None  # jobs per store, as last probed
        self.lost = False  # Redis lost its jobs (or some were dropped): reconcile
        self.on_change: Callable[[], None] = lambda: None  # called from a thread on a change
        self.marker_key = f"{settings.key_prefix}:reconciled"
        # The marker is missed only once this process wrote it: before its first reconcile
        # (at start-up, or a follower that never led) there is nothing Redis could lose.
        self.marked = False
        # A follower that dropped timer changes asks the leader to reconcile (oncall.cluster).
        self.asked_key = f"{settings.key_prefix}:reconcile_asked"
        self.leading = False  # this process's scheduler runs the stores (the leader's)
        self._store_args = (settings.db, connect)
        self.scheduler = self._new_scheduler(lambda: True)

    def _new_scheduler(self, gate: Callable[[], bool]) -> _Scheduler:
        """Return a scheduler over new job store objects: one that was shut down (a leader
        that stepped down) cannot be started again."""
        db, connect = self._store_args
        stores = {
            name: _JobStore(db=db, jobs_key=store.jobs_key, run_times_key=store.run_times_key,
                            **connect)
            for name, store in self.stores.items()
        }  # fmt: skip
        return _Scheduler(
            gate,
            jobstores=stores,
            timezone=UTC,
            executors={"default": {"type": "threadpool", "max_workers": 2}},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            jobstore_retry_interval=1,
        )

    def start(self) -> None:
        """Start the writer and the probe, then the scheduler (one process alone: tests)."""
        self.start_threads()
        self.start_scheduler(lambda: True)

    def start_scheduler(self, gate: Callable[[], bool]) -> None:
        """Start a scheduler that runs due jobs while `gate()` (asked from its thread
        before every pass) says this process leads; the writer and the probe must run."""
        self.stop_scheduler()
        self.scheduler = self._new_scheduler(gate)
        self.leading = True
        self.scheduler.start()

    def stop_scheduler(self) -> _Scheduler | None:
        """Stop starting jobs at once (a pass under way finishes) and return the stopped
        scheduler for `shutdown_scheduler`, or None when none ran."""
        self.leading = False
        scheduler = self.scheduler
        if not scheduler.running:
            return None
        scheduler.pause()
        return scheduler

    @staticmethod
    def shutdown_scheduler(scheduler: _Scheduler) -> None:
        """Shut down a stopped scheduler; blocks (up to a Redis timeout) while its thread
        finishes a pass: call it from a worker thread."""
        if scheduler.running:
            scheduler.shutdown(wait=False)

    def start_threads(self) -> None:
        """Start the writer and the probe (without the scheduler: jobs do not fire)."""
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._write_loop, name="oncall-timer-writer", daemon=True),
            threading.Thread(target=self._probe_loop, name="oncall-redis-probe", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def pause(self) -> None:
        """Stop starting jobs; running ones go on."""
        self.stop_scheduler()

    def shutdown(self) -> None:
        """Stop the scheduler and the threads; blocks (up to a Redis timeout): call it from
        a worker thread."""
        self._stopping.set()
        self._wake_writer.set()
        self.leading = False
        self.shutdown_scheduler(self.scheduler)
        for thread in self._threads:
            thread.join()
        self._threads = []

    @property
    def running(self) -> bool:
        """Return whether this process's scheduler runs due jobs (started, not paused)."""
        return bool(self.scheduler.state == STATE_RUNNING)

    def _wall(self, due: datetime) -> datetime:
        """Return the wall-clock instant at which the service's clock reaches `due`."""
        if self.clock is system_clock:
            return due
        return due - self.clock() + system_clock()

    def wakeup(self) -> None:
        """Make the scheduler look for due jobs now (it only sets an event).

        APScheduler 3.11.3 stops waking up when a job-store call fails inside its wake-up
        (`get_next_run_time` is outside its error handling); the probe calls this every
        time, which restarts it.
        """
        if self.running:
            self.scheduler.wakeup()

    # Changes from the event loop: queued, never waited for.

    def apply(self, followups: Followups) -> None:
        """Write and remove the timers a committed transaction decided."""
        self.schedule(followups.jobs)
        self.remove(followups.removed)

    def schedule(self, jobs: Sequence[JobSpec]) -> None:
        """Queue jobs to add or replace. Jobs all due later than URGENT may wait up to
        COALESCE for others to share their write."""
        if jobs:
            soonest = min(spec.run_date for spec in jobs)
            self._enqueue(list(jobs), [], urgent=soonest - self.clock() < URGENT)

    def remove(self, removed: Sequence[tuple[str, str]]) -> None:
        """Queue jobs to remove by (store, job id); missing ones are fine. A job left behind
        finds nothing to do when it fires; still, a closed incident's timers leave Redis."""
        if removed:
            self._enqueue([], list(removed), urgent=True)

    def _enqueue(self, jobs: list[JobSpec], removed: list[tuple[str, str]], urgent: bool) -> None:
        with self._lock:
            if not self.health.healthy or self._queued_count >= MAX_QUEUED:
                # Redis is down or too slow: drop the change; the database still holds
                # the truth and the reconciler writes it back once Redis answers.
                self.dropped += len(jobs) + len(removed)
                self.lost = True
                return
            self._queued.append((jobs, removed))
            self._queued_count += len(jobs) + len(removed)
            self._urgent = self._urgent or urgent
        if urgent or len(self._queued) == 1:
            self._wake_writer.set()

    def _write_loop(self) -> None:
        """The writer thread: write what is queued, in order, one MULTI/EXEC at a time.

        Requests that finish together (a group commit answers many at once) share one
        round trip; a job due within URGENT, or a removal, goes at once with everything
        queued before it; a job due later waits up to COALESCE for company. A failure
        trips `health` and drops the batch (rebuilt by the reconciler).
        """
        while not self._stopping.is_set():
            self._wake_writer.wait()
            self._wake_writer.clear()
            if not self._urgent and not self._stopping.is_set():
                self._wake_writer.wait(COALESCE.total_seconds())
                self._wake_writer.clear()
            with self._lock:
                queued, self._queued = self._queued, []
                self._queued_count = 0
                self._urgent = False
            if queued:
                self._write(queued)

    def _write(self, queued: list[tuple[list[JobSpec], list[tuple[str, str]]]]) -> None:
        try:
            with self._writer_redis.pipeline(transaction=True) as pipe:
                for jobs, removed in queued:
                    for batch in batched(jobs, _BATCH):
                        self._queue_writes(pipe, batch)
                    self._queue_removals(pipe, removed)
                pipe.execute()
        except (RedisError, OSError) as error:
            count = sum(len(j) + len(r) for j, r in queued)
            with self._lock:
                self.dropped += count
                self.lost = True
            self.health.trip(error)
            log.warning("could not update jobs", extra={"dropped": count, "error": str(error)})
            self.on_change()
            return
        earliest = min((spec.run_date for jobs, _ in queued for spec in jobs), default=None)
        if earliest is not None and self._wakes_too_late(earliest):
            self.wakeup()

    def _wakes_too_late(self, run_date: datetime) -> bool:
        """Return whether the scheduler means to look at its stores only after `run_date`."""
        due_in = (run_date - self.clock()).total_seconds()
        return self.scheduler.next_look > time.monotonic() + due_in

    def _probe_loop(self) -> None:
        """The probe thread: `probe` every PROBE_INTERVAL, and wake the scheduler (which
        also ends APScheduler's stalled wake-up, see `wakeup`)."""
        while not self._stopping.wait(PROBE_INTERVAL):
            self.probe()
            self.wakeup()

    def probe(self) -> None:
        """Read the marker and the job counts; blocks up to a Redis timeout.

        A failure trips `health`; the first success after one resets it and says so
        (`on_change`), and so does a marker Redis lost (a flush, a restart without
        persistence): the reconciler then rebuilds the stores at once.
        """
        leading = self.leading
        try:
            with self._probe_redis.pipeline(transaction=True) as pipe:
                pipe.get(self.marker_key)
                for store in self.stores.values():
                    pipe.zcard(store.run_times_key)
                if leading:
                    pipe.get(self.asked_key)
                    pipe.delete(self.asked_key)
                marker, *counts = pipe.execute()
            asked = False
            if leading:
                *counts, asked_value, _ = counts
                asked = asked_value is not None
            elif self.lost and self.health.healthy:
                # A follower runs no reconciler: what it dropped, the leader's rebuilds.
                self._probe_redis.set(self.asked_key, b"1")
                self.lost = False
        except (RedisError, OSError) as error:
            if self.health.healthy:
                log.warning("Redis is unhealthy", extra={"error": str(error)})
            self.health.trip(error)
            self.on_change()
            return
        self.pending = dict(zip(self.stores, map(int, counts), strict=True))
        if not self.health.healthy:
            log.info("Redis answers again")
            self.health.reset()
            self.lost = True  # what was dropped meanwhile
        if marker != JOBS_LAYOUT and self.marked and not self.lost:
            log.warning("Redis lost its timers")
            self.lost = True
        if asked:
            self.lost = True  # a follower dropped timer changes
        if self.lost:
            self.on_change()

    # Blocking calls, for worker threads (the reconciler's).

    def write_many(self, jobs: Iterable[JobSpec]) -> int:
        """Add or replace date jobs, a MULTI/EXEC of up to `_BATCH` at a time; return how
        many were written. Raises RedisError when Redis refuses (the jobs written so far
        stay).

        Writes what `add_job` writes (the pickled job state in the jobs hash, its run time in
        the sorted set), the pair always together, without add_job's per-job existence
        check and scheduler wake-up: one round trip per batch instead of several per job.
        """
        written = 0
        for batch in batched(jobs, _BATCH):
            with self._writer_redis.pipeline(transaction=True) as pipe:
                self._queue_writes(pipe, batch)
                pipe.execute()
            written += len(batch)
        if written:
            self.wakeup()
        return written

    def _queue_writes(self, pipe: Pipeline, jobs: Sequence[JobSpec]) -> None:
        """Queue the writes of `jobs` (of any stores) on `pipe`."""
        states: dict[str, dict[EncodableT, EncodableT]] = {}
        run_times: dict[str, dict[str, float]] = {}
        for spec in jobs:
            jobstore = self.stores[spec.store]
            run_date = self._wall(spec.run_date)
            state = {
                **self._job_state(spec.func, len(spec.args) + 1),
                "id": spec.job_id,
                "args": (*spec.args, self.deployment),
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

    def remove_now(self, removed: Sequence[tuple[str, str]]) -> None:
        """Remove jobs at once; raises RedisError."""
        if removed:
            with self._writer_redis.pipeline(transaction=True) as pipe:
                self._queue_removals(pipe, removed)
                pipe.execute()

    def run_times(self, store: str) -> dict[str, float]:
        """Return each job of a store with its run time (a UTC timestamp); raises RedisError
        when Redis is unreachable."""
        jobstore = self.stores[store]
        pairs = self._writer_redis.zrange(jobstore.run_times_key, 0, -1, withscores=True)
        return {key.decode(): score for key, score in pairs}

    def wall_timestamp(self, due: datetime) -> float:
        """Return the run time a job due at `due` (service clock) is written with."""
        return float(datetime_to_utc_timestamp(self._wall(due)))

    def mark_reconciled(self) -> None:
        """Leave a key saying the stores were reconciled, under this jobs layout; raises
        RedisError."""
        self._writer_redis.set(self.marker_key, JOBS_LAYOUT)
        self.marked = True

    def lost_since_reconcile(self) -> bool:
        """Return whether Redis lost what it held since the last mark (flushed, or restarted
        without persistence), or holds jobs of another layout; raises RedisError when
        Redis is unreachable."""
        return bool(self._writer_redis.get(self.marker_key) != JOBS_LAYOUT)

    def close(self) -> None:
        """Close the connections (after `shutdown`)."""
        for store in self.stores.values():
            store.redis.close()
        self._writer_redis.close()
        self._probe_redis.close()
