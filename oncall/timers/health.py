"""Whether Redis is answering: a circuit breaker that the Redis threads trip and reset and
everything else only reads (a plain attribute read: nothing waits for it)."""

from __future__ import annotations

import time


class RedisHealth:
    """Tripped at a Redis call's first failure or timeout; reset by the probe's next
    success. While tripped, timer changes are dropped and the database sweep fires what
    falls due."""

    def __init__(self) -> None:
        self.healthy = True
        self.error: str | None = None
        self.since = time.monotonic()  # of the last change

    def trip(self, error: BaseException) -> None:
        """Mark Redis unhealthy, keeping the error's text."""
        self.error = str(error) or type(error).__name__
        if self.healthy:
            self.healthy = False
            self.since = time.monotonic()

    def reset(self) -> None:
        """Mark Redis healthy again."""
        self.healthy = True
        self.error = None
        self.since = time.monotonic()
