"""Failed-authentication throttling per client address. Pure: the caller passes `now`.

An address that presents `limit` wrong credentials within `window` of its first failure is
refused until that window ends, whatever it presents meanwhile (a right token included),
so guessing tokens from one address gets `limit` tries per window. A success neither
resets nor slows anything: interleaving a known token with guesses buys no more tries.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

FAILURE_LIMIT = 10
FAILURE_WINDOW = timedelta(minutes=1)
MAX_ADDRESSES = 10_000
# Wrong passwords per user (the address's count is FAILURE_LIMIT, shared with tokens): a
# guesser spread over many addresses still gets this many tries per window per user.
LOGIN_LIMIT = 5
LOGIN_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Failures:
    """An address's failures in the window that began at its first one."""

    since: datetime
    count: int


def after_failure(entry: Failures | None, now: datetime, window: timedelta) -> Failures:
    """Return an address's failures once one more happened at `now`: a new window when
    there was none or it has ended."""
    if entry is None or now >= entry.since + window:
        return Failures(now, 1)
    return Failures(entry.since, entry.count + 1)


def refused_for(
    entry: Failures | None, now: datetime, limit: int, window: timedelta
) -> timedelta | None:
    """Return how long an address stays refused at `now`, or None when it may try."""
    if entry is None or entry.count < limit:
        return None
    remaining = entry.since + window - now
    return remaining if remaining > timedelta(0) else None


def client_of(peer: str, forwarded_for: list[str], trusted: frozenset[str]) -> str:
    """Return the client address of a request from `peer`: the peer itself unless it is a
    trusted proxy, else the nearest address in the X-Forwarded-For values that is not a
    trusted proxy (the ones before it were written by the client and prove nothing)."""
    if peer not in trusted:
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        if hop and hop not in trusted:
            return hop
    return peer


class Throttle:
    """The failures of the most recent `max_addresses` addresses; the oldest are evicted,
    so memory stays bounded whatever the number of addresses that fail."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: timedelta = FAILURE_WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, address: str, now: datetime) -> int | None:
        """Return in whole seconds (at least 1) how long `address` stays refused, or None
        when it may try; forgets an address whose window has ended."""
        entry = self._failures.get(address)
        if entry is None:
            return None
        left = refused_for(entry, now, self.limit, self.window)
        if left is None:
            if now >= entry.since + self.window:
                del self._failures[address]
            return None
        return max(1, math.ceil(left.total_seconds()))

    def failed(self, address: str, now: datetime) -> None:
        """Count one failed authentication of `address` at `now`."""
        self._failures[address] = after_failure(self._failures.get(address), now, self.window)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
