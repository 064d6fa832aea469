"""The outbox's decisions: how long a claimed attempt is leased, what a page links to, and
what follows a failed attempt. Pure.

A page is one row per contact of each user paged (per notification rule, when the user
has rules), written in the transaction that decided it; a page due at once has its first
attempt claimed there too, so it is sent without another transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from oncall.directory.model import Contact, User
from oncall.ingest.context import NO_CONTEXT, AlertContext
from oncall.notify.retry import NOTIFICATION_ATTEMPTS, PERMANENT, backoff
from oncall.notify.storm import DigestSummary

LEASE = timedelta(seconds=30)  # a claimed attempt owns its row this long (a send times out at 10s)
MAX_SOURCE_URLS = 5
SOURCE_URLS_READ = 50  # generator URLs looked at for those 5 (duplicates are common)


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery attempt with what the page needs: the notification and incident
    rows, the attempt's number, the incident's source links and annotations, for a digest
    what it says, and its first alert's context (details, links, images). Attempt 0: a
    page just written for later (a notification rule's `after`, a digest's next minute),
    nothing claimed yet."""

    notification: Any
    incident: Any
    attempt: int
    source_urls: tuple[str, ...]
    annotations: dict[str, Any]
    digest: DigestSummary | None = None
    context: AlertContext = NO_CONTEXT

    @property
    def waiting(self) -> bool:
        """Return whether the page is due later: its job is scheduled, not sent now."""
        return self.attempt == 0


def rule_pages(user: User, urgency: str) -> list[tuple[Contact, timedelta]]:
    """Return the pages a level writes for `user` at an incident of `urgency`: each
    contact with how long after the level fired it is due, by the user's rules (every
    contact at once without rules). A rule naming a contact the user no longer has
    (the directory is checked when read, so only a bug) pages nothing."""
    contacts = {contact.name: contact for contact in user.contacts}
    return [
        (contacts[rule.contact], rule.after)
        for rule in user.rules(urgency)
        if rule.contact in contacts
    ]


def level_pages(
    users: Sequence[User], urgency: str
) -> tuple[list[tuple[User, Contact, timedelta]], list[str]]:
    """Return the pages a level writes for `users` at an incident of `urgency` (each
    user's `rule_pages`, in order: user, contact, delay) and the users it cannot page at
    all (no contact methods)."""
    pages = [
        (user, contact, after) for user in users for contact, after in rule_pages(user, urgency)
    ]
    return pages, [user.name for user in users if not user.contacts]


class Attempt(NamedTuple):
    """One finished attempt of the page `row` (as claimed: only its fields that never
    change are read)."""

    row: Any
    attempt: int
    outcome: str
    error: str | None
    duration_ms: int
    retry_after: timedelta | None


def page_sources(
    generator_urls: Iterable[str],
    incident_annotations: Mapping[str, Any],
    first_annotations: Callable[[], Mapping[str, Any] | None],
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return a page's source links and annotations from the incident's first alerts'
    generator URLs (in order) and its common annotations; `first_annotations` returns the
    first alert's, asked for only when the group has no common summary."""
    urls = tuple(dict.fromkeys(u for u in generator_urls if u))[:MAX_SOURCE_URLS]
    annotations = dict(incident_annotations)
    if "summary" not in annotations:
        # Alerts of a group that disagree have no common summary: show the first one's.
        first = first_annotations()
        if first is not None:
            annotations = {**first, **annotations}
    return urls, annotations


def next_attempt(failed: Attempt, retry_base: timedelta, now: datetime) -> datetime | None:
    """Return when to try a failed page again, or None when it has failed for good
    (a permanent failure, or the last attempt): after the backoff from `retry_base`, or the
    `Retry-After` the receiver asked for when that is longer."""
    if failed.outcome == PERMANENT or failed.attempt >= NOTIFICATION_ATTEMPTS:
        return None
    wait = backoff(failed.attempt, retry_base)
    if failed.retry_after is not None and failed.retry_after > wait:
        wait = failed.retry_after
    return now + wait
