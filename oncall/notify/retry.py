"""Retry timing and delivery outcomes: exponential backoff (the same shape for every kind of
job), what an HTTP answer means for a page, and `Retry-After`."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

NOTIFICATION_ATTEMPTS = 5  # 2, 4, 8, 16 s between them
NOTIFICATION_BACKOFF = timedelta(seconds=2)


def backoff(failed_attempts: int, base: timedelta) -> timedelta:
    """Return the wait after the `failed_attempts`-th failure: base, 2*base, 4*base, ..."""
    if failed_attempts < 1:
        raise ValueError("backoff follows a failure: failed_attempts starts at 1")
    return base * (1 << (failed_attempts - 1))


DELIVERED, RETRY, PERMANENT = "delivered", "retry", "permanent"
MAX_RETRY_AFTER = timedelta(hours=1)


def classify_http(status: int | None) -> str:
    """Return what an HTTP outcome means for a delivery: delivered, retry or permanent.

    `status` None means no response at all (timeout, refused, reset): retry. 2xx is
    delivered; 408, 429 and 5xx are worth retrying; every other status will not get better.
    """
    if status is None:
        return RETRY
    if 200 <= status < 300:
        return DELIVERED
    if status in (408, 429) or 500 <= status < 600:
        return RETRY
    return PERMANENT


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Return the wait a `Retry-After` header asks for (seconds or an HTTP date), capped at an
    hour; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            return None
        wait = moment - now
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))
