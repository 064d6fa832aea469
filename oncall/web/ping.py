"""`[monitoring] ping_url`: a GET every `ping_interval` while /health's checks say the
service can page (oncall.monitoring decides), through the one outbound HTTP client.

One tick at start-up, then one per interval on a fixed cadence: a slow check or ping does
not move the next one. Each ping is bounded by PING_TIMEOUT (at most half the interval), so
a switch that hangs never delays the next tick. Only the URL's host is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from oncall.monitoring import should_ping, url_host
from oncall.notify.channels import DeliveryError
from oncall.web.keys import RUNTIME, SETTINGS
from oncall.web.routes.ops import SHARED

log = logging.getLogger(__name__)
PING_TIMEOUT = 10.0  # seconds


async def tick(app: web.Application, was_healthy: bool | None) -> bool:
    """Run the checks and ping when they pass; return whether they passed."""
    runtime = app[RUNTIME]
    monitoring = app[SETTINGS].monitoring
    host = url_host(monitoring.ping_url)
    decision = should_ping(await app[SHARED].checks())
    if not decision.ping:
        runtime.metrics.pings.labels("withheld").inc()
        if was_healthy is not False:
            log.warning(
                "pings withheld: the service is not healthy",
                extra={"host": host, "reason": decision.reason},
            )
        return False
    if was_healthy is False:
        log.info("pings resumed: the service is healthy again", extra={"host": host})
    timeout = min(PING_TIMEOUT, monitoring.ping_interval.total_seconds() / 2)
    try:
        await runtime.notifier.http.get(monitoring.ping_url, timeout)
    except DeliveryError as error:
        runtime.metrics.pings.labels("failed").inc()
        log.warning("ping failed", extra={"host": host, "error": error.message})
    else:
        runtime.metrics.pings.labels("sent").inc()
    return True


async def run(app: web.Application) -> None:
    """Tick until cancelled."""
    loop = asyncio.get_running_loop()
    interval = app[SETTINGS].monitoring.ping_interval.total_seconds()
    healthy: bool | None = None
    due = loop.time()
    while True:
        try:
            healthy = await tick(app, healthy)
        except Exception:  # the next tick tries again; the switch notices if it never does
            log.exception("ping tick failed")
        due += interval
        if due < loop.time():  # suspended, or a tick overran: do not catch up in a burst
            due = loop.time() + interval
        await asyncio.sleep(due - loop.time())


async def pinging(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the ticks run from after the runtime's start to before its stop."""
    task = asyncio.create_task(run(app))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
