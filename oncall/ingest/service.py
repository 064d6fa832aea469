"""Ingest as the service runs it: deliveries, events and heartbeat pings in, each applied
in one transaction, their timers and first pages after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from oncall.clock import Clock
from oncall.db.engine import Database
from oncall.directory.holder import DirectoryHolder
from oncall.directory.model import Integration
from oncall.errors import ConstraintViolated, Unavailable
from oncall.ingest import ratelimit, store
from oncall.ingest.alertmanager import AlertGroup
from oncall.ingest.events_v2 import ChangeEvent, Event
from oncall.ingest.heartbeats import split_watchdog
from oncall.metrics import Metrics
from oncall.timers.effects import AfterCommit
from oncall.timers.followups import ESCALATION, JobSpec, heartbeat_job

if TYPE_CHECKING:
    from oncall.escalation.service import Escalation
    from oncall.incidents.service import Incidents

log = logging.getLogger(__name__)
_RACE_RETRIES = 3


class Ingest:
    job_store = ESCALATION  # the job store of heartbeat deadlines (for the reconciler)

    def __init__(
        self,
        db: Database,
        directory: DirectoryHolder,
        clock: Clock,
        metrics: Metrics,
        after_commit: AfterCommit,
        incidents: Incidents,
        escalation: Escalation,
    ) -> None:
        self.db = db
        self.directory = directory
        self.clock = clock
        self.metrics = metrics
        self.after_commit = after_commit
        self.incidents = incidents
        self.escalation = escalation
        self.buckets: dict[str, ratelimit.Bucket] = {}  # Events v2 rate limits, per integration

    async def ingest(
        self, integration: Integration, group: AlertGroup, now: datetime
    ) -> store.IngestResult:
        """Apply one Alertmanager delivery in one transaction; return the incidents it touched.

        The integration's always-firing Watchdog alert pings the heartbeats it feeds and is
        never an incident. Raises Unavailable when the database cannot take the write.
        """
        heartbeats = self.directory.current.heartbeats_fed_by(integration.name)
        if heartbeats:
            pinged, group = split_watchdog(group)
            if pinged:
                for heartbeat in heartbeats:
                    await self.ping(heartbeat, now)
        if not group.alerts:
            return store.IngestResult()
        return await self._ingest(
            integration,
            len(group.alerts),
            store.ingest_group,
            integration.name,
            group,
            self.directory.current,
            now,
            self.incidents,
            self.escalation,
        )

    async def ingest_event(
        self, integration: Integration, event: Event, now: datetime
    ) -> store.IngestResult:
        """Apply one Events v2 event in one transaction; return the incidents it touched."""
        return await self._ingest(
            integration,
            1,
            store.ingest_event,
            integration.name,
            event,
            self.directory.current,
            now,
            self.incidents,
            self.escalation,
        )

    async def _ingest(
        self,
        integration: Integration,
        alerts: int,
        work: Callable[..., store.IngestResult],
        *args: Any,
    ) -> store.IngestResult:
        # A concurrent delivery for the same group or dedup_key can win the race to open the
        # incident (the unique index on open groups says so); the transaction then reruns
        # and joins it.
        for attempt in range(_RACE_RETRIES):
            try:
                result = await self.db.run(work, *args)
            except ConstraintViolated:
                log.info("ingest race, retrying", extra={"attempt": attempt + 1})
                continue
            self.after_commit(result.followups)
            self.metrics.alerts.labels(integration.name, "accepted").inc(alerts)
            self.metrics.incidents.labels("opened").inc(len(result.opened))
            self.metrics.incidents.labels("resolved").inc(len(result.resolved))
            if result.steps_fired:
                self.escalation.opened(result.steps_fired)
            if result.opened or result.resolved:
                log.info(
                    "ingested",
                    extra={
                        "integration": integration.name,
                        "opened": result.opened,
                        "resolved": result.resolved,
                    },
                )
            return result
        raise Unavailable("concurrent deliveries kept conflicting; retry")

    async def add_change(self, integration: Integration, change: ChangeEvent, now: datetime) -> int:
        """Store one change event (pruning its integration's older ones); return its id."""
        change_id: int = await self.db.run(store.add_change, integration.name, change, now)
        return change_id

    async def changes_before(self, integration: str, opened_at: datetime) -> list[Any]:
        """Return the change events shown with an incident of `integration` opened at
        `opened_at` (oncall.ingest.changes), newest first."""
        return await self.db.run(store.changes_before, integration, opened_at)

    def rate_limited(
        self, integration: Integration, now: datetime, kind: str = "event"
    ) -> timedelta | None:
        """Spend one of the integration's events; return how long to wait when over its rate.

        Change events (`kind` "change") have a bucket of their own at the same rate, so a
        busy deploy pipeline never delays a trigger.
        """
        limit, window = integration.rate_limit
        key = integration.name if kind == "event" else f"{integration.name}\x00{kind}"
        bucket, wait = ratelimit.take(self.buckets.get(key), limit, window, now)
        self.buckets[key] = bucket
        return wait

    async def ping(self, heartbeat: Integration, now: datetime) -> datetime:
        """Record a heartbeat ping; return the new deadline."""
        deadline, followups = await self.db.run(store.ping, heartbeat, now, self.incidents)
        followups.jobs.append(heartbeat_job(heartbeat.name, deadline))
        self.after_commit(followups)
        return deadline

    async def check_heartbeat(self, name: str) -> None:
        """Open an incident if the heartbeat's deadline passed without a ping. A failure is
        logged; the deadline stays armed in the database and the reconciler fires it again."""
        heartbeat = self.directory.current.integrations.get(name)
        if heartbeat is None or heartbeat.type != "heartbeat":
            return
        try:
            result = await self.db.run(
                store.check_heartbeat,
                heartbeat,
                self.directory.current,
                self.clock(),
                self.incidents,
                self.escalation,
            )
        except Exception as error:  # the reconciler retries: the deadline is still armed
            log.warning("heartbeat check failed", extra={"heartbeat": name, "error": repr(error)})
            return
        self.after_commit(result.followups)
        if result.steps_fired:
            self.escalation.opened(result.steps_fired)
        if result.opened:
            self.metrics.incidents.labels("opened").inc(len(result.opened))
            log.warning("heartbeat missed", extra={"heartbeat": name, "incident": result.opened})

    # The reconciler's source of heartbeat timers.

    async def expected(self) -> Mapping[str, tuple[str, datetime]]:
        """Return every armed heartbeat deadline, by the job id it must have in Redis."""
        deadlines = await self.db.run(store.armed_heartbeats)
        return {heartbeat_job(name, due).job_id: (name, due) for name, due in deadlines}

    async def due(self, now: datetime, limit: int) -> list[JobSpec]:
        """Return the jobs of up to `limit` deadlines passed by `now` (for the sweep)."""
        return self.jobs(await self.db.run(store.armed_heartbeats, now, limit))

    def jobs(self, items: Iterable[tuple[str, datetime]]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""
        return [heartbeat_job(name, due) for name, due in items]
