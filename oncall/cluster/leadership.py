"""Who runs the timers. On PostgreSQL every instance tries for the lease (oncall.cluster
.lease) every `failover / RENEWALS`, on a connection of its own so a busy pool never delays
a renewal; the holder leads. On SQLite the one process holds a file lock and always leads.

Leading means: the APScheduler scheduler, the reconciler and the database sweep run here
(`Role.lead`); following means they do not (`Role.follow`). A leader whose renewal fails,
or does not answer in time, follows at once, which is always before its lease could expire
and be taken by another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from oncall.clock import system_clock
from oncall.cluster import lease, sole, store
from oncall.cluster.lease import Lease
from oncall.db.engine import is_sqlite
from oncall.errors import ConfigError
from oncall.metrics import Metrics
from oncall.settings import Settings

log = logging.getLogger(__name__)
RELEASE_TIMEOUT = 2.0  # seconds a stopping leader waits to hand the lease back


class Role(Protocol):
    """What leading starts and following stops (the runtime)."""

    async def lead(self) -> None:
        """Start the timers: reconcile, then the scheduler and the loops. Cancellable."""

    def follow(self) -> None:
        """Stop the timers at once (what must wait, such as a Redis call, goes on in the
        background); called on the event loop."""


@dataclass(frozen=True)
class Status:
    """What /health and /metrics show of the cluster, as this instance last saw it."""

    role: str  # leader or follower
    instance: str
    instance_id: str
    leader: str | None
    leader_id: str | None
    since: datetime | None
    term: int
    seen: datetime | None  # the database's time of the last successful try
    error: str | None


def instance_name(settings: Settings) -> str:
    """Return `[cluster] instance`, or `<hostname>:<port>` when it is empty."""
    return settings.cluster.instance or f"{socket.gethostname()}:{settings.server.port}"


class Leadership:
    """The base: who this process is and whether it leads now."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.name = instance_name(settings)
        # A process of its own: a restarted instance is another holder, so it never renews
        # a lease its previous process held (which may be alive, paused, elsewhere).
        self.id = f"{self.name}#{secrets.token_hex(4)}"
        self.metrics = metrics
        self._leading = False
        self._deadline = 0.0  # time.monotonic() by which a leader has stopped
        self._role: Role | None = None
        self._leading_task: asyncio.Task[None] | None = None

    def holds(self) -> bool:
        """Return whether this process may run the timers now; any thread may ask."""
        return self._leading and time.monotonic() < self._deadline

    def status(self) -> Status:
        raise NotImplementedError

    async def start(self, role: Role) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop leading (the timers stop) and trying to."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what keeps other processes out, once everything else is closed."""

    def _become_leader(self) -> asyncio.Task[None]:
        assert self._role is not None
        self._leading = True
        self.metrics.cluster_leader.set(1)
        self.metrics.elections.inc()
        self._leading_task = asyncio.create_task(self._role.lead())
        self._leading_task.add_done_callback(_log_failure)
        return self._leading_task

    def _step_down(self, reason: str) -> None:
        if not self._leading:
            return
        self._leading = False
        self._deadline = 0.0
        self.metrics.cluster_leader.set(0)
        self.metrics.step_downs.labels(reason).inc()
        if self._leading_task is not None:
            self._leading_task.cancel()
            self._leading_task = None
        assert self._role is not None
        self._role.follow()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("starting the timers failed", exc_info=task.exception())


class SoleLeadership(Leadership):
    """SQLite: this process is the only one, held so by a lock on a file beside the
    database; it leads from start to stop."""

    def __init__(self, settings: Settings, metrics: Metrics, db_path: str | None) -> None:
        super().__init__(settings, metrics)
        self._lock = sole.SoleInstance(db_path) if db_path else None
        self._since: datetime | None = None

    def claim(self) -> None:
        """Take the database's lock; raises ConfigError naming who holds it."""
        if self._lock is None:
            return
        try:
            self._lock.acquire()
        except sole.HeldElsewhere as error:
            raise ConfigError(
                [
                    f"another oncall process uses this SQLite database ({error.holder}; "
                    f"lock file {error.path}): SQLite has one writer, so one instance "
                    "serves it. Stop the other one, or move to PostgreSQL "
                    "(`python app.py move-database`) to run several"
                ]
            ) from None

    def holds(self) -> bool:
        return self._leading

    async def start(self, role: Role) -> None:
        self._role = role
        self._deadline = float("inf")
        self._since = system_clock()
        await self._become_leader()

    async def stop(self) -> None:
        self._step_down("released")

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def status(self) -> Status:
        return Status(
            role="leader" if self._leading else "follower",
            instance=self.name,
            instance_id=self.id,
            leader=self.name if self._leading else None,
            leader_id=self.id if self._leading else None,
            since=self._since,
            term=1,
            seen=None,
            error=None,
        )


class LeaseLeadership(Leadership):
    """PostgreSQL: the lease row decides; see the module's docstring."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        store_factory: Callable[[], store.LeaseStore],
    ) -> None:
        super().__init__(settings, metrics)
        self.failover = settings.cluster.failover
        self._store_factory = store_factory
        self._store: store.LeaseStore | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._lease: Lease | None = None  # as last read
        self._seen: datetime | None = None
        self._error: str | None = None
        self._stale: set[asyncio.Task[Any]] = set()  # attempts given up on, still ending

    async def start(self, role: Role) -> None:
        """Try once (and when that wins, start leading and wait for it), then go on trying
        every interval in the background."""
        self._role = role
        await self._attempt()
        if self._leading_task is not None:
            await asyncio.wait([self._leading_task])
        self._loop_task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = lease.interval(self.failover)
        due = loop.time()
        while True:
            due += period
            if due < loop.time():  # a slow try or a paused process: no burst of catching up
                due = loop.time() + period
            await asyncio.sleep(due - loop.time())
            await self._attempt()

    def _store_now(self) -> store.LeaseStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    async def _take(self) -> tuple[Lease, datetime, bool]:
        return await self._store_now().try_take(self.id, self.name, self.failover)

    async def _attempt(self) -> None:
        """Take or renew the lease once, within the time left: a leader's deadline, or the
        failover; a failure or no answer in time makes a leader follow at once."""
        sent = time.monotonic()
        # A leader waits for its renewal as long as it may lead anyway: a renewal slowed
        # by a database stall, or answered while the process was paused (SIGSTOP, a VM
        # migration) for less than that, keeps the lease instead of handing it over.
        # A follower's try may be slow to no one's harm; cut at one interval, a try
        # after one given up on (which starts on a new connection) could never succeed
        # where connecting takes longer than that, and nobody would lead again.
        limit = self._deadline - sent if self._leading else self.failover.total_seconds()
        attempt = asyncio.create_task(self._take())
        done, _ = await asyncio.wait([attempt], timeout=max(limit, 0.0))
        if not done:
            self._give_up_on(attempt)
            self._failed("the database did not answer in time")
            return
        try:
            current, now, won = attempt.result()
        except Exception as error:
            self._drop_store()
            self._failed(f"{type(error).__name__}: {error}"[:300])
            return
        self._lease, self._seen, self._error = current, now, None
        self.metrics.cluster_term.set(current.term)
        if current.since is not None:
            self.metrics.leader_since.set(current.since.timestamp())
        if not won:
            self._step_down("lost")  # cannot happen while we renew in time; said if it does
            return
        if lease.deadline(sent, self.failover) <= time.monotonic():
            return  # won too slowly to lead on it: the next try renews and leads
        self._deadline = lease.deadline(sent, self.failover)
        if not self._leading:
            log.info("leading: this instance runs the timers", extra={"term": current.term})
            self._become_leader()

    def _failed(self, error: str) -> None:
        self._error = error
        if self._leading:
            log.warning(
                "stopped leading: the lease could not be renewed",
                extra={"error": error, "instance": self.id},
            )
            self._step_down("lost")

    def _give_up_on(self, attempt: asyncio.Task[Any]) -> None:
        """Leave an attempt that did not answer to end in the background, with its engine:
        the next one starts on a new connection."""
        attempt.cancel()
        old, self._store = self._store, None

        async def end() -> None:
            with contextlib.suppress(BaseException):
                await attempt
            if old is not None:
                await old.dispose()

        self._track(end())

    def _drop_store(self) -> None:
        old, self._store = self._store, None
        if old is not None:
            self._track(old.dispose())

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._stale.add(task)
        task.add_done_callback(self._stale.discard)

    async def stop(self) -> None:
        """Stop trying; a leader stops its timers, then lets its lease expire at once so
        another instance takes over without waiting for it."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        was_leading = self._leading
        self._step_down("released")
        if was_leading:
            try:
                await asyncio.wait_for(self._give_up(), RELEASE_TIMEOUT)
            except Exception as error:  # it expires by itself within failover
                log.warning("could not release the lease", extra={"error": repr(error)})
        if self._stale:
            await asyncio.wait(self._stale, timeout=RELEASE_TIMEOUT)
        if self._store is not None:
            await self._store.dispose()
            self._store = None

    async def _give_up(self) -> None:
        await self._store_now().give_up(self.id)

    def status(self) -> Status:
        current = self._lease
        live = current is not None and self._seen is not None and current.live(self._seen)
        return Status(
            role="leader" if self.holds() else "follower",
            instance=self.name,
            instance_id=self.id,
            leader=current.holder_name if live and current else None,
            leader_id=current.holder if live and current else None,
            since=current.since if live and current else None,
            term=current.term if current else 0,
            seen=self._seen,
            error=self._error,
        )


def leadership_of(settings: Settings, metrics: Metrics) -> Leadership:
    """Return the leadership of `settings`' database: a lease on PostgreSQL, the file lock
    on SQLite."""
    url = settings.database.url
    if is_sqlite(url):
        return SoleLeadership(settings, metrics, sole.sqlite_path(url))
    name = instance_name(settings)
    schema = settings.database.schema
    failover = settings.cluster.failover
    return LeaseLeadership(settings, metrics, lambda: store.LeaseStore(url, schema, name, failover))


__all__ = ["Leadership", "LeaseLeadership", "Role", "SoleLeadership", "Status", "leadership_of"]
