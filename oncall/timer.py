"""Timers: one AsyncIOScheduler with two Redis job stores, `escalation` and `notification`.

The only module that imports APScheduler. Every job is a module-level coroutine named by
text, takes only IDs, has a fixed id, `replace_existing=True`, `misfire_grace_time=None`
(APScheduler's default of 1 s silently drops jobs that come due during a restart or a burst,
and it is stored per job) and `coalesce=True`. Each store is owned by this one scheduler.

Redis is reached with the synchronous client APScheduler uses, so it gets short timeouts and
one immediate retry (for a pooled connection that died with a Redis restart): redis-py's
default retry policy sleeps between attempts, which would block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from oncall.config import RedisSettings

log = logging.getLogger(__name__)
STORES = ("escalation", "notification")
ESCALATION_JOB = "oncall.jobs:run_escalation_step"
NOTIFICATION_JOB = "oncall.jobs:deliver_notification"
HEARTBEAT_JOB = "oncall.jobs:check_heartbeat"


def heartbeat_job_id(name: str) -> str:
    """Return the fixed job id of a heartbeat's deadline (in the escalation store)."""
    return f"heartbeat:{name}"


def store_keys(key_prefix: str, store: str) -> tuple[str, str]:
    """Return the Redis keys (jobs hash, run-times sorted set) of a job store."""
    return f"{key_prefix}:{store}:jobs", f"{key_prefix}:{store}:run_times"


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

    def schedule(self, store: str, job_id: str, func: str, args: Sequence[int | str],
                 run_date: datetime) -> bool:
        """Add or replace a date job; return False when Redis refused (the reconciler heals)."""
        try:
            self.scheduler.add_job(func, "date", run_date=run_date, args=list(args), id=job_id,
                                   jobstore=store, replace_existing=True,
                                   misfire_grace_time=None, coalesce=True)
        except (RedisError, OSError) as error:
            log.warning("could not schedule job", extra={"job_id": job_id,
                                                         "error": str(error)})
            return False
        return True

    def remove(self, store: str, job_id: str) -> bool:
        """Remove a job; return False when Redis refused (the job will find nothing to do)."""
        try:
            self.scheduler.remove_job(job_id, jobstore=store)
        except JobLookupError:
            return True
        except (RedisError, OSError) as error:
            log.warning("could not remove job", extra={"job_id": job_id, "error": str(error)})
            return False
        return True

    def job_ids(self, store: str) -> set[str]:
        """Return the ids of the jobs in a store; raises RedisError when Redis is unreachable."""
        jobstore = self.stores[store]
        return {key.decode() for key in jobstore.redis.hkeys(jobstore.jobs_key)}

    def pending_counts(self) -> dict[str, int]:
        """Return the number of jobs per store; raises RedisError when Redis is unreachable."""
        return {name: int(store.redis.zcard(store.run_times_key))
                for name, store in self.stores.items()}

    def close(self) -> None:
        for store in self.stores.values():
            store.redis.close()
