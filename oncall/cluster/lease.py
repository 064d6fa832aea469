"""The leader's lease: who may run the timers, decided from the lease row and the
database's clock. Pure.

The holder renews every RENEWALS-th of `failover`; another instance may take the lease
only once it has expired. A leader counts its own deadline from the moment it *sent* its
last successful renewal, which is no later than the moment the database stamped it, and
stops MARGIN before that: so it has always stopped before the lease could be taken, on any
clock that runs at the database's rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

RENEWALS = 5  # renewals (and, for followers, attempts to take) per failover
MARGIN_SHARE = 0.1  # the leader stops this share of failover before its lease expires


@dataclass(frozen=True)
class Lease:
    """The lease row: `holder` is the holding process's id, None before anyone held it."""

    holder: str | None
    holder_name: str | None
    term: int
    since: datetime | None
    expires_at: datetime | None

    def live(self, now: datetime) -> bool:
        """Return whether someone holds the lease at `now`."""
        return self.holder is not None and self.expires_at is not None and now < self.expires_at


def take(current: Lease, me: str, my_name: str, now: datetime, failover: timedelta) -> Lease | None:
    """Return the lease after `me` tries for it at `now`: renewed when `me` holds it, a new
    term when it has expired (whoever held it), or None while another process holds it."""
    if current.live(now):
        if current.holder != me:
            return None
        return dataclasses.replace(current, expires_at=now + failover)
    return Lease(me, my_name, current.term + 1, now, now + failover)


def release(current: Lease, me: str, now: datetime) -> Lease | None:
    """Return the lease after `me` gives it up at `now` (it expires at once, so another
    instance takes it at its next try), or None when `me` does not hold it."""
    if not current.live(now) or current.holder != me:
        return None
    return dataclasses.replace(current, expires_at=now)


def interval(failover: timedelta) -> float:
    """Return the seconds between renewals (and between a follower's tries)."""
    return failover.total_seconds() / RENEWALS


def deadline(sent: float, failover: timedelta) -> float:
    """Return when (on the clock of `sent`) a leader whose last successful renewal was
    sent at `sent` must have stopped its timers."""
    return sent + failover.total_seconds() * (1 - MARGIN_SHARE)
