"""Per-key token buckets: `limit` events per `window`, refilled continuously. Pure values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: datetime


def take(
    bucket: Bucket | None, limit: int, window: timedelta, now: datetime
) -> tuple[Bucket, timedelta | None]:
    """Spend one token; return the new bucket and None, or the unchanged bucket and how long
    until a token is available."""
    rate = limit / window.total_seconds()
    if bucket is None:
        bucket = Bucket(float(limit), now)
    tokens = min(float(limit), bucket.tokens + max(0.0, (now - bucket.at).total_seconds()) * rate)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), None
    return Bucket(tokens, now), timedelta(seconds=(1.0 - tokens) / rate)
