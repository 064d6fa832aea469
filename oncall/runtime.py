"""The runtime of one process: the database, the timers and the services, built whole,
started and stopped together. The web app holds one; so can a command or a test."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from oncall.clock import Clock
from oncall.db.engine import Database, make_engine
from oncall.db.migrate import upgrade
from oncall.directory.holder import DirectoryHolder
from oncall.escalation.service import Escalation
from oncall.incidents.service import Incidents
from oncall.ingest.service import Ingest
from oncall.metrics import Metrics
from oncall.notify.notifier import Notifier, link_key
from oncall.schedules.service import Schedules
from oncall.settings import Settings
from oncall.timers import jobs
from oncall.timers.background import Background
from oncall.timers.effects import AfterCommit
from oncall.timers.reconcile import Reconciler
from oncall.timers.scheduler import Timers

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
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.clock = clock
        self.db = db
        self.metrics = Metrics()
        self.background = Background()
        self.timers = Timers(settings.redis, clock)
        self.notifier = Notifier(
            db, directory, settings, clock, self.metrics, self.timers, self.background, link_key
        )
        after_commit = AfterCommit(self.timers, self.notifier.dispatch)
        self.schedules = Schedules(db, directory)
        self.escalation = Escalation(
            db, directory, clock, self.metrics, after_commit, self.schedules, self.notifier
        )
        self.incidents = Incidents(db, self.metrics, after_commit, self.escalation, self.notifier)
        self.ingest = Ingest(
            db, directory, clock, self.metrics, after_commit, self.incidents, self.escalation
        )
        self.reconciler = Reconciler(
            self.timers, [self.escalation, self.ingest, self.notifier], self.metrics, clock
        )
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, settings: Settings, directory: DirectoryHolder, clock: Clock) -> Runtime:
        """Return the runtime of `settings`, its database migrated to the newest revision."""
        engine = make_engine(settings.database)
        await upgrade(engine, settings.database.schema)
        db = Database(engine)
        return cls(settings, directory, clock, db, await link_key(db, settings))

    async def start(self) -> None:
        """Start the timers: reconcile from the database first, then let jobs fire."""
        jobs.install(self)
        try:
            await self.reconciler.run_once()
        except Exception as error:  # Redis down at start-up: alerts are still taken
            log.warning(
                "start-up reconcile failed; retrying every reconcile_interval",
                extra={"error": repr(error)},
            )
        self.timers.start()
        interval = self.settings.scheduler.reconcile_interval
        self._tasks = [
            asyncio.create_task(self.reconciler.loop(interval)),
            asyncio.create_task(self.reconciler.watchdog()),
        ]

    async def stop(self) -> None:
        """Stop the timers, let running work finish, then close every connection."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # No new jobs start; running ones get JOB_GRACE to finish, then are cancelled (an
        # unfinished page is sent again after restart). Shutting APScheduler down first
        # would cancel them at once.
        self.timers.pause()
        await self.background.drain(JOB_GRACE)  # job runs and pages being sent
        await self.timers.shutdown()
        jobs.uninstall(self)
        self.timers.close()
        await self.notifier.close()
        await self.db.close()
