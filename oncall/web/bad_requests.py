"""aiohttp's log of requests it could not parse: one short line per interval, never the
request itself.

aiohttp answers a malformed request (a stray byte in the path or a header, a header too
long) 400 and logs it at ERROR with a traceback whose message quotes the offending line
of the request. That line may be a feed URL or an `Authorization` header, and anyone can
send such requests, each writing several times its own size of log.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

from oncall.web.connections import LogThrottle

SERVER_LOGGER = "aiohttp.server"


class BadRequestLog(logging.Filter):
    """Rewrites aiohttp's records of unparseable requests into a warning naming only the
    kind of error and the client, lets one through per interval of `throttle` and drops
    the rest (counted in the next one); passes every other record unchanged."""

    def __init__(self, throttle: LogThrottle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether the record is written (rewritten in place when it is one of
        aiohttp's parse errors)."""
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        held = self.throttle.allow(time.monotonic())
        if held is None:
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "malformed HTTP request answered 400", ()
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.__dict__.update(error=type(error).__name__, remote=remote, since_last=held)
        return True


def install(throttle: LogThrottle) -> BadRequestLog:
    """Add the filter to aiohttp's server logger (once per process); return it."""
    logger = logging.getLogger(SERVER_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, BadRequestLog):
            return existing
    installed = BadRequestLog(throttle)
    logger.addFilter(installed)
    return installed
