"""The notifier: sends pages from the outbox, records every attempt, schedules retries.

A page is written, with its first attempt claimed, in the transaction that decided it (an
escalation step's, a resolution's); `dispatch` then sends it at once from this process.
Retries are jobs in the `notification` store. The outbox row is what makes a page durable:
after a crash the reconciler finds it pending and schedules a job for when its lease ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oncall.clock import Clock, isoformat
from oncall.db.engine import Connection, Database
from oncall.directory.holder import DirectoryHolder
from oncall.directory.model import Contact, User
from oncall.incidents.lifecycle import Opened
from oncall.metrics import Metrics
from oncall.notify import keyfile, links, store
from oncall.notify.channels import ChannelContext, DeliveryError, building, channel
from oncall.notify.http import HttpPoster
from oncall.notify.messages import Page, digest_page, test_page
from oncall.notify.outbox import Attempt, Claimed
from oncall.notify.retry import DELIVERED, NOTIFICATION_BACKOFF, PERMANENT, RETRY
from oncall.settings import Settings
from oncall.timers.background import Background
from oncall.timers.followups import NOTIFICATION, Followups, JobSpec, delivery_job
from oncall.timers.scheduler import Timers

log = logging.getLogger(__name__)
SEND_TIMEOUT = 10.0  # seconds an HTTP page may take before it is retried


@dataclass(frozen=True)
class TestOutcome:
    """How a test page to one contact went: `error` None when it was delivered."""

    contact: str
    type: str
    error: str | None


async def link_key(db: Database, settings: Settings) -> bytes:
    """Return the key signing action links: `[security] secret_key`, or one generated once
    and kept in `[security] secret_key_file` (mode 0600), so links in pages already sent
    stay valid across restarts. A key an older version kept in the database moves into
    that file. Raises ConfigError naming the file when it cannot be used."""
    secret = settings.security.secret_key
    if secret:
        return secret.encode()
    path = settings.security.secret_key_file
    return await db.run(store.move_link_secret, lambda legacy: keyfile.load_or_create(path, legacy))


class Notifier:
    """Pages out of the outbox, one per process."""

    job_store = NOTIFICATION  # the job store of its retries (for the reconciler)

    def __init__(
        self,
        db: Database,
        directory: DirectoryHolder,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
        timers: Timers,
        background: Background,
        link_key: bytes,
    ) -> None:
        self.db = db
        self.directory = directory
        self.clock = clock
        self.metrics = metrics
        self.timers = timers
        self.background = background
        self.link_key = link_key
        self.public_url = settings.server.public_url
        self.storm = settings.paging.storm_threshold
        self.http = HttpPoster(clock, timeout=SEND_TIMEOUT)
        self.context = ChannelContext(self.http, settings.smtp, clock)
        self.retry_base = NOTIFICATION_BACKOFF
        # Attempts waiting to be recorded together, each with its sender's future.
        self._to_record: list[tuple[Attempt, asyncio.Future[JobSpec | None]]] = []

    # Inside another domain's transaction.

    def write_pages_in(
        self,
        conn: Connection,
        incident_id: int,
        level: int,
        repeat: int,
        users: Sequence[User],
        now: datetime,
        opened: Opened | None,
    ) -> list[Claimed]:
        """Write a level's pages, their first attempts claimed (in a storm, folded into
        digests); return the claims."""
        return store.create_pages(conn, incident_id, level, repeat, users, now, opened, self.storm)

    def close_pages_in(
        self, conn: Connection, incident_id: int, resolved: bool, now: datetime
    ) -> Followups:
        """Cancel a closed incident's unsent pages; on resolution queue its resolved
        messages. Returns the jobs to remove and the messages to send."""
        return store.on_incident_closed(conn, incident_id, resolved, now)

    # Sending.

    def dispatch(self, pages: Sequence[Claimed]) -> None:
        """Send pages claimed in a committed transaction, at once, in the background.

        A new page is sent from this process rather than through a job: a job would cost
        several Redis round trips and a scheduler wake-up per page. Trigger pages are
        checked first (`_send_wanted`). A page a notification rule holds for later gets
        its job instead, due when the page is.
        """
        waiting = [c.notification for c in pages if c.waiting]
        if waiting:
            self.timers.schedule([delivery_job(row.id, row.next_attempt_at) for row in waiting])
        pages = [c for c in pages if not c.waiting]
        triggers = [c for c in pages if c.notification.kind == "trigger"]
        if triggers:
            self.background.spawn(self._send_wanted(triggers))
        for claimed in pages:
            if claimed.notification.kind != "trigger":
                self.background.spawn(self._send_now(claimed))

    async def _send_wanted(self, pages: Sequence[Claimed]) -> None:
        """Send the trigger pages that are still wanted, read in one unit just before: an
        acknowledgement that committed after the step claimed them cancelled them."""
        try:
            wanted = await self.db.run(
                store.still_wanted, [claimed.notification.id for claimed in pages]
            )
        except Exception as error:  # the lease runs out and a job sends them
            log.warning("could not re-check pages", extra={"error": repr(error)})
            self.timers.schedule(
                [delivery_job(c.notification.id, c.notification.next_attempt_at) for c in pages]
            )
            return
        # The attempt begins now, at the decision: a wanted page goes out in this task
        # (the usual single page) or in tasks that carry this instant, not one a loop
        # iteration later, when an acknowledgement may already have been answered.
        now = self.clock()
        sends = []
        for claimed in pages:
            if claimed.notification.id in wanted:
                sends.append(claimed)
            else:
                log.info("page no longer wanted", extra={"notification": claimed.notification.id})
        for claimed in sends[1:]:
            self.background.spawn(self._send_now(claimed, now))
        if sends:
            await self._send_now(sends[0], now)

    async def _send_now(self, claimed: Claimed, now: datetime | None = None) -> None:
        try:
            await self.send(claimed, now or self.clock())
        except Exception as error:  # recording failed: the lease runs out, a job resends
            row = claimed.notification
            log.warning(
                "recording a delivery failed; it is sent again after its lease",
                extra={"notification": row.id, "error": repr(error)},
            )
            self.timers.schedule([delivery_job(row.id, row.next_attempt_at)])

    def link(self, incident_id: int, action: str, user: str, now: datetime) -> str:
        """Return the signed link acting on an incident as `user`."""
        token = links.sign(self.link_key, incident_id, action, user, now + links.LINK_LIFETIME)
        return f"{self.public_url}/a/{token}"

    def page(self, claimed: Claimed, now: datetime) -> Page:
        """Return the page for a claimed attempt, with action links on trigger pages."""
        row, incident = claimed.notification, claimed.incident
        if claimed.digest is not None:
            digest = digest_page(
                row.id,
                claimed.digest,
                row.user_name,
                f"{self.public_url}/api/v1/incidents?status=triggered",
                isoformat(now) or "",
            )
            return dataclasses.replace(digest, attempt=claimed.attempt)
        resolved = row.kind == "resolved"
        action_links = (
            {}
            if resolved
            else {
                action: self.link(incident.id, action, row.user_name, now)
                for action in links.ACTIONS
            }
        )
        return Page(
            delivery_id=row.id,
            event="incident.resolved" if resolved else "incident.triggered",
            incident_id=incident.id,
            status=incident.status,
            title=incident.title,
            severity=incident.severity,
            labels=dict(incident.labels),
            annotations=claimed.annotations,
            level=row.level,
            repeat=row.repeat,
            user=row.user_name,
            alert_count=incident.alert_count,
            incident_url=f"{self.public_url}/api/v1/incidents/{incident.id}",
            external_url=incident.external_url,
            source_urls=claimed.source_urls,
            links=action_links,
            sent_at=isoformat(now) or "",
            attempt=claimed.attempt,
            context=claimed.context,
        )

    def contact(self, user_name: str, name: str | None, index: int) -> Contact:
        """Return a user's contact by its stable name (by its position for pages written
        before contacts had names); raises DeliveryError(permanent) when the directory no
        longer has it."""
        user = self.directory.current.users.get(user_name)
        if user is not None:
            for contact in user.contacts:
                if (contact.name == name) if name else (contact.index == index):
                    return contact
        raise DeliveryError("the contact is no longer in the directory", permanent=True)

    async def deliver(self, notification_id: int) -> str:
        """Make one delivery attempt; return its outcome (or "stale" when nothing was due)."""
        now = self.clock()
        claimed = await self.db.run(store.claim, notification_id, now, self.storm)
        if isinstance(claimed, str):
            log.debug(
                "delivery job did nothing",
                extra={"notification": notification_id, "reason": claimed},
            )
            return "stale"
        return await self.send(claimed, now)

    async def send(self, claimed: Claimed, now: datetime) -> str:
        """Send a claimed attempt and record it; return its outcome. Raises what
        recording raised.

        A page or message that cannot be built fails for good at once (`building`); what
        else a channel raises unexpectedly is retried, as a failure to send.
        """
        row = claimed.notification
        started = time.perf_counter()
        error: str | None = None
        retry_after = None
        try:
            contact = self.contact(row.user_name, row.contact_name, row.contact_index)
            with building("page"):  # rows that cannot make a page fail every attempt alike
                page = self.page(claimed, now)
            await channel(contact.type)(page, contact, self.context)
            outcome = DELIVERED
        except DeliveryError as failure:
            outcome = PERMANENT if failure.permanent else RETRY
            error, retry_after = failure.message, failure.retry_after
        except Exception as failure:  # a bug while sending must not lose the page: retry
            log.exception("channel raised unexpectedly", extra={"notification": row.id})
            outcome, error = RETRY, f"{type(failure).__name__}: {failure}"
        duration_ms = int((time.perf_counter() - started) * 1000)
        self.metrics.notifications.labels(row.contact_type, outcome).inc()
        log.info(
            "delivery attempt",
            extra={
                "notification": row.id,
                "incident": row.incident_id,
                "user": row.user_name,
                "contact": row.contact_type,
                "attempt": claimed.attempt,
                "outcome": outcome,
                "ms": duration_ms,
                "error": error,
            },
        )
        following = await self._record(
            Attempt(row, claimed.attempt, outcome, error, duration_ms, retry_after)
        )
        if following is not None:
            self.timers.schedule([following])
        return outcome

    async def _record(self, attempt: Attempt) -> JobSpec | None:
        """Record an attempt, with the others that finish in this loop iteration, in one
        unit of work (`store.record_attempts`); return its next attempt's job, if any.
        Raises what recording raised."""
        loop = asyncio.get_running_loop()
        recorded: asyncio.Future[JobSpec | None] = loop.create_future()
        if not self._to_record:  # the task's first step runs on the next iteration
            self.background.spawn(self._record_queued())
        self._to_record.append((attempt, recorded))
        return await recorded

    async def _record_queued(self) -> None:
        queued, self._to_record = self._to_record, []
        try:
            following = await self.db.run(
                store.record_attempts,
                [attempt for attempt, _ in queued],
                self.retry_base,
                self.clock(),
            )
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

    async def test_page(self, user: User) -> list[TestOutcome]:
        """Send a test message to each of `user`'s contacts now, through their channels,
        and return each outcome in contact order. Writes nothing: there is no incident."""
        now = self.clock()
        page = test_page(user.name, self.public_url, isoformat(now) or "")
        return list(await asyncio.gather(*(self._test_one(page, c) for c in user.contacts)))

    async def _test_one(self, page: Page, contact: Contact) -> TestOutcome:
        error: str | None = None
        try:
            await channel(contact.type)(page, contact, self.context)
        except DeliveryError as failure:
            error = failure.message
        except Exception as failure:  # a bug in a channel: the answer says so, not a 500
            log.exception("channel raised unexpectedly on a test page")
            error = f"{type(failure).__name__}: {failure}"
        log.info(
            "test page",
            extra={"user": page.user, "contact": contact.name, "ok": error is None},
        )
        return TestOutcome(contact.name, contact.type, error)

    # Reading.

    async def list_notifications(
        self, statuses: Sequence[str], incident_id: int | None, limit: int
    ) -> list[tuple[Any, list[Any]]]:
        """Return notifications, newest first, each with its attempts (oldest first)."""
        return await self.db.run(store.list_notifications, statuses, incident_id, limit)

    async def stats(self, now: datetime) -> dict[str, int]:
        """Return the count of dead letters and of overdue pending pages."""
        return await self.db.run(store.notification_stats, now)

    # The reconciler's source of notification timers.

    async def expected(self) -> Mapping[str, tuple[int, datetime]]:
        """Return the retry job every pending page must have, by job id."""
        attempts = await self.db.run(store.pending_attempts)
        return {delivery_job(n, due).job_id: (n, due) for n, due in attempts}

    async def due(self, now: datetime, limit: int) -> list[JobSpec]:
        """Return the jobs of up to `limit` attempts due by `now` (for the sweep)."""
        return self.jobs(await self.db.run(store.pending_attempts, now, limit))

    def jobs(self, items: Iterable[tuple[int, datetime]]) -> list[JobSpec]:
        """Return the jobs of `expected` items."""
        return [delivery_job(n, due) for n, due in items]

    async def close(self) -> None:
        await self.http.close()
