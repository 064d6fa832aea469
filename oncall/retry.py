"""Retry timing: exponential backoff, the same shape for every kind of job."""

from __future__ import annotations

from datetime import timedelta

ESCALATION_ATTEMPTS = 4  # the first try and 3 retries, from 5 s (the seed service's rule)
ESCALATION_BACKOFF = timedelta(seconds=5)
NOTIFICATION_ATTEMPTS = 5  # 2, 4, 8, 16 s between them
NOTIFICATION_BACKOFF = timedelta(seconds=2)


def backoff(failed_attempts: int, base: timedelta) -> timedelta:
    """Return the wait after the `failed_attempts`-th failure: base, 2*base, 4*base, ..."""
    if failed_attempts < 1:
        raise ValueError("backoff follows a failure: failed_attempts starts at 1")
    return base * (2 ** (failed_attempts - 1))
