"""Delivers pages from the outbox: the one retry loop for notifications.

A delivery job carries a notification id. It claims the row's next attempt (a transaction),
sends through the contact's channel (no transaction held open), and records the attempt and
its consequence (a second transaction). A crash between sending and recording means the
page is sent again after the claim's lease; channels carry the row id as an idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from oncall import background, links, store_notify
from oncall.channels import ChannelContext, DeliveryError, channel
from oncall.clock import Clock
from oncall.config import Settings
from oncall.db import Database
from oncall.directory import Contact, DirectoryHolder
from oncall.followups import Delivery, delivery_job_id
from oncall.http import HttpPoster
from oncall.messages import Page
from oncall.metrics import Metrics
from oncall.retry import DELIVERED, NOTIFICATION_BACKOFF, PERMANENT, RETRY
from oncall.timer import NOTIFICATION_JOB, JobSpec, Timers

log = logging.getLogger(__name__)


def delivery_jobs(deliveries: Iterable[Delivery]) -> list[JobSpec]:
    """Return the jobs of delivery attempts."""
    return [JobSpec(d.job_id, NOTIFICATION_JOB, (d.notification_id,), d.due_at)
            for d in deliveries]


class Notifier:
    def __init__(self, db: Database, directory: DirectoryHolder, settings: Settings,
                 clock: Clock, link_key: bytes) -> None:
        self.db = db
        self.directory = directory
        self.clock = clock
        self.link_key = link_key
        self.public_url = settings.server.public_url
        self.http = HttpPoster(clock, timeout=10.0)
        self.context = ChannelContext(self.http, settings.smtp, clock)
        self.retry_base = NOTIFICATION_BACKOFF
        self.timers: Timers | None = None
        self.outcomes: Counter[str] = Counter()  # delivered / retry / permanent / stale
        self.metrics: Metrics | None = None
        # Attempts waiting to be recorded together, each with its sender's future.
        self._to_record: list[tuple[store_notify.Attempt, asyncio.Future[Delivery | None]]] = []

    def schedule(self, deliveries: Iterable[Delivery]) -> None:
        """Send the pages claimed with their writing at once, and put the other attempts
        (retries) into Redis (best effort: the reconciler heals failures).

        A new page is sent from this process rather than through a job: a job would cost
        several Redis round trips and a scheduler wake-up per page. The row in the outbox is
        what makes it durable either way: after a crash, the reconciler finds it pending
        without a job and schedules one for when its lease ends.
        """
        if self.timers is None:
            return
        jobs = []
        for delivery in deliveries:
            if delivery.claimed is not None:
                background.spawn(self._send_now(delivery))
            else:
                jobs.append(delivery)
        self.timers.schedule_many("notification", delivery_jobs(jobs))

    def unschedule(self, notification_ids: Iterable[int]) -> None:
        if self.timers is not None:
            self.timers.remove_many("notification",
                                    [delivery_job_id(n) for n in notification_ids])

    async def _send_now(self, delivery: Delivery) -> None:
        try:
            await self.send(delivery.claimed, self.clock())
        except Exception as error:  # recording failed: the lease runs out, a job resends
            log.warning("recording a delivery failed; it is sent again after its lease",
                        extra={"notification": delivery.notification_id,
                               "error": repr(error)})
            if self.timers is not None:
                self.timers.schedule_many("notification", delivery_jobs(
                    [Delivery(delivery.notification_id,
                              delivery.claimed.notification.next_attempt_at)]))

    def link(self, incident_id: int, action: str, user: str, now: datetime) -> str:
        token = links.sign(self.link_key, incident_id, action, user, now + links.LINK_LIFETIME)
        return f"{self.public_url}/a/{token}"

    def page(self, claimed: store_notify.Claimed, now: datetime) -> Page:
        """Return the page for a claimed attempt, with action links on trigger pages."""
        row, incident = claimed.notification, claimed.incident
        resolved = row.kind == "resolved"
        action_links = {} if resolved else {
            action: self.link(incident.id, action, row.user_name, now)
            for action in links.ACTIONS}
        return Page(
            delivery_id=row.id,
            event="incident.resolved" if resolved else "incident.triggered",
            incident_id=incident.id, status=incident.status, title=incident.title,
            severity=incident.severity, labels=dict(incident.labels),
            annotations=claimed.annotations, level=row.level, repeat=row.repeat,
            user=row.user_name, alert_count=incident.alert_count,
            incident_url=f"{self.public_url}/api/v1/incidents/{incident.id}",
            external_url=incident.external_url, source_urls=claimed.source_urls,
            links=action_links)

    def contact(self, user_name: str, index: int) -> Contact:
        user = self.directory.current.users.get(user_name)
        if user is None or index >= len(user.contacts):
            raise DeliveryError("the contact is no longer in the directory", permanent=True)
        return user.contacts[index]

    async def deliver(self, notification_id: int) -> str:
        """Make one delivery attempt; return its outcome (or "stale" when nothing was due)."""
        now = self.clock()
        claimed = await self.db.run(store_notify.claim, notification_id, now)
        if isinstance(claimed, str):
            self.outcomes["stale"] += 1
            log.debug("delivery job did nothing", extra={"notification": notification_id,
                                                         "reason": claimed})
            return "stale"
        return await self.send(claimed, now)

    async def send(self, claimed: store_notify.Claimed, now: datetime) -> str:
        """Send a claimed attempt and record it; return its outcome."""
        row = claimed.notification
        started = time.perf_counter()
        error: str | None = None
        retry_after = None
        try:
            contact = self.contact(row.user_name, row.contact_index)
            await channel(contact.type)(self.page(claimed, now), contact, self.context)
            outcome = DELIVERED
        except DeliveryError as failure:
            outcome = PERMANENT if failure.permanent else RETRY
            error, retry_after = failure.message, failure.retry_after
        except Exception as failure:  # a bug in a channel must not lose the page: retry
            log.exception("channel raised unexpectedly", extra={"notification": row.id})
            outcome, error = RETRY, f"{type(failure).__name__}: {failure}"
        duration_ms = int((time.perf_counter() - started) * 1000)
        self.outcomes[outcome] += 1
        if self.metrics is not None:
            self.metrics.notifications.labels(row.contact_type, outcome).inc()
        log.info("delivery attempt", extra={
            "notification": row.id, "incident": row.incident_id, "user": row.user_name,
            "contact": row.contact_type, "attempt": claimed.attempt, "outcome": outcome,
            "ms": duration_ms, "error": error})
        following = await self._record(store_notify.Attempt(
            row, claimed.attempt, outcome, error, duration_ms, retry_after))
        if following is not None:
            self.schedule([following])
        return outcome

    async def _record(self, attempt: store_notify.Attempt) -> Delivery | None:
        """Record an attempt, with the others that finish in this loop iteration, in one
        unit of work (`store_notify.record_attempts`); return its next attempt, if any.
        Raises what recording raised."""
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[Delivery | None] = loop.create_future()
        if not self._to_record:  # the task's first step runs on the next iteration
            background.spawn(self._record_queued())
        self._to_record.append((attempt, recorded))
        return await recorded

    async def _record_queued(self) -> None:
        queued, self._to_record = self._to_record, []
        try:
            following = await self.db.run(store_notify.record_attempts,
                                          [attempt for attempt, _ in queued],
                                          self.retry_base, self.clock())
        except asyncio.CancelledError:  # a shutdown past its grace: the senders stop too
            for _, recorded in queued:
                recorded.cancel()
            raise
        except Exception as error:  # each sender handles it: the page is resent after its lease
            for _, recorded in queued:
                if not recorded.done():
                    recorded.set_exception(error)
            return
        for (_, recorded), result in zip(queued, following, strict=True):
            if not recorded.done():  # its sender may have been cancelled meanwhile
                recorded.set_result(result)

    async def close(self) -> None:
        await self.http.close()
