"""The runtime of one process: the database, the timers and the services, built whole,
started and stopped together. The web app holds one; so can a command or a test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from oncall.accounts.service import Accounts
from oncall.audit.service import Audit
from oncall.clock import Clock
from oncall.cluster.leadership import Leadership, SoleLeadership, leadership_of
from oncall.db.engine import Database, make_engine
from oncall.db.meta import deployment_id
from oncall.db.migrate import upgrade
from oncall.directory.holder import DirectoryHolder
from oncall.escalation.service import Escalation
from oncall.escalation.steps import Step
from oncall.incidents.service import Incidents
from oncall.incidents.wakes import WAKE_JOB
from oncall.ingest.service import Ingest
from oncall.maintenance.service import Maintenance
from oncall.metrics import Metrics
from oncall.notify.notifier import Notifier, link_key
from oncall.schedules.service import Schedules
from oncall.settings import Settings
from oncall.simulate.service import Simulator
from oncall.timers import jobs
from oncall.timers.background import Background
from oncall.timers.effects import AfterCommit
from oncall.timers.followups import DELIVERY_JOB, HEARTBEAT_JOB, MAINTENANCE_JOB, STEP_JOB
from oncall.timers.reconcile import Reconciler
from oncall.timers.scheduler import Timers
from oncall.web.throttle import LOGIN_LIMIT, LOGIN_WINDOW, Throttle

log = logging.getLogger(__name__)
JOB_GRACE = 5.0  # seconds running jobs get to finish at shutdown


class Runtime:
    """Everything a process runs, wired once: each service gets what it uses."""

    def __init__(
        self,
        settings: Settings,
        directory: DirectoryHolder,
        clock: Clock,
        db: Database,
        link_key: bytes,
        deployment: str = "",
        leadership: Leadership | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.clock = clock
        self.db = db
        self.metrics = metrics or Metrics()
        self.leadership = leadership or SoleLeadership(settings, self.metrics, None)
        self.background = Background()
        self.deployment = deployment
        self.timers = Timers(settings.redis, clock, deployment)
        self.foreign: dict[str, int] = {}  # jobs of other deployments seen, by deployment
        self.throttle = Throttle()  # failed authentications per client address
        self.logins = Throttle(LOGIN_LIMIT, LOGIN_WINDOW)  # wrong passwords per user
        # ... and per name no user has, apart: made-up names, as many as a guesser likes,
        # never evict a user's count from `logins`, and are refused alike.
        self.strangers = Throttle(LOGIN_LIMIT, LOGIN_WINDOW)
        self.notifier = Notifier(
            db, directory, settings, clock, self.metrics, self.timers, self.background, link_key
        )
        after_commit = AfterCommit(self.timers, self.notifier.dispatch)
        self.audit = Audit(db)
        self.accounts = Accounts(db, directory, self.audit)
        self.schedules = Schedules(db, directory, self.audit)
        self.escalation = Escalation(
            db, directory, clock, self.metrics, after_commit, self.schedules, self.notifier
        )
        self.escalation.leads = self.leadership.holds
        self.incidents = Incidents(db, self.metrics, after_commit, self.escalation, self.notifier)
        self.maintenance = Maintenance(
            db, directory, clock, after_commit, self.audit, self.incidents
        )
        self.incidents.held_in = self.maintenance.holding_in
        self.ingest = Ingest(
            db, directory, clock, self.metrics, after_commit, self.incidents, self.escalation
        )
        self.simulator = Simulator(db, directory, settings.paging.storm_threshold)
        self.reconciler = Reconciler(
            self.timers,
            [self.escalation, self.ingest, self.notifier, self.incidents, self.maintenance],
            self.metrics,
            clock,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runs: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {
            STEP_JOB: lambda incident_id, level, repeat: self.escalation.run_step(
                incident_id, Step(level, repeat)
            ),
            DELIVERY_JOB: self.notifier.deliver,
            HEARTBEAT_JOB: self.ingest.check_heartbeat,
            WAKE_JOB: self.incidents.run_wake,
            MAINTENANCE_JOB: self.maintenance.apply_edge,
        }

    @classmethod
    async def open(cls, settings: Settings, directory: DirectoryHolder, clock: Clock) -> Runtime:
        """Return the runtime of `settings`, its database migrated to the newest revision.

        Raises ConfigError when another process holds the SQLite database."""
        metrics = Metrics()
        leadership = leadership_of(settings, metrics)
        if isinstance(leadership, SoleLeadership):
            leadership.claim()  # before the migrations: a second process changes nothing
        engine = make_engine(settings.database)
        try:
            await upgrade(engine, settings.database.schema)
            db = Database(engine)
            key = await link_key(db, settings)
            deployment = await db.run(deployment_id)
        except BaseException:
            await engine.dispose()
            await leadership.stop()
            raise
        return cls(settings, directory, clock, db, key, deployment, leadership, metrics)

    # Jobs: from APScheduler's thread, or from the sweep.

    def hand_over(self, func: str, args: tuple[Any, ...], deployment: str) -> None:
        """Start a job that fired in the scheduler's thread on the event loop; return at
        once. Called from that thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # stopping: the database says what is still due at the next start
        try:
            loop.call_soon_threadsafe(self.start_job, func, args, deployment)
        except RuntimeError:  # the loop closed meanwhile
            return

    def start_job(self, func: str, args: tuple[Any, ...], deployment: str = "") -> None:
        """Run a job's work in the background, one run per job at a time; a job another
        deployment wrote (two deployments sharing the Redis key prefix) does nothing and is
        reported."""
        if deployment and deployment != self.deployment:
            self.foreign[deployment] = self.foreign.get(deployment, 0) + 1
            self.metrics.foreign_jobs.inc()
            log.warning(
                "a job of another deployment fired here: two deployments share the Redis "
                "key prefix",
                extra={"job": func, "args": list(args), "deployment": deployment},
            )
            return
        run = self._runs[func]
        self.background.exclusive((func, args), lambda: run(*args))

    def _changed(self) -> None:
        """From the Redis probe's thread: Redis answers again or lost its jobs."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.reconciler.asked.set)

    async def start(self) -> None:
        """Start the writer and the probe, then try for leadership: when this instance
        leads, its timers have started (reconciled first) by the time this returns."""
        jobs.install(self)
        self._loop = asyncio.get_running_loop()
        self.timers.on_change = self._changed
        await asyncio.to_thread(self.timers.probe)
        self.timers.start_threads()
        await self.leadership.start(self)

    async def lead(self) -> None:
        """Become the one that runs the timers: reconcile from the database first (steps
        that fell due while nobody led fire at once), then let jobs fire, and reconcile
        and sweep from now on. Cancelled when leadership is lost meanwhile."""
        # This pass covers whatever asked for one before it (the start-up probe finding a
        # new Redis, say); a change it misses asks again through the probe.
        self.reconciler.asked.clear()
        try:
            await self.reconciler.run_once()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # Redis down: alerts are still taken, the sweep fires
            log.warning(
                "reconcile on taking the lead failed; retrying every reconcile_interval",
                extra={"error": repr(error)},
            )
        self.timers.start_scheduler(self.leadership.holds)
        interval = self.settings.scheduler.reconcile_interval
        self._tasks = [
            asyncio.create_task(self.reconciler.loop(interval)),
            asyncio.create_task(
                self.reconciler.sweep(lambda job: self.start_job(job.func, job.args))
            ),
        ]

    def follow(self) -> None:
        """Stop running the timers at once: no job starts from here on (jobs under way and
        pages being sent finish; their claims in the database keep the next leader from
        doing them again). The scheduler's thread is shut down in the background."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        stopped = self.timers.stop_scheduler()
        if stopped is not None:
            self.background.spawn(asyncio.to_thread(self.timers.shutdown_scheduler, stopped))

    async def stop(self) -> None:
        """Stop the timers, hand back the lead, let running work finish, then close every
        connection."""
        tasks = self._tasks
        # Following first: no new jobs start; running ones get JOB_GRACE to finish, then
        # are cancelled (an unfinished page is sent again after restart). Shutting
        # APScheduler down first would cancel them at once.
        await self.leadership.stop()
        if tasks:  # bounded: a shutdown must end (see Background.drain)
            await asyncio.wait(tasks, timeout=JOB_GRACE)
        await self.background.drain(JOB_GRACE)  # job runs and pages being sent
        await asyncio.to_thread(self.timers.shutdown)  # may wait for a Redis timeout
        self._loop = None
        jobs.uninstall(self)
        self.timers.close()
        await self.notifier.close()
        await self.db.close()
        self.leadership.close()  # last: the next process on this SQLite file may start
