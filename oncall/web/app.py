"""The application factory: settings and directory in, a ready aiohttp app out."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from oncall.clock import Clock, system_clock
from oncall.directory.holder import DirectoryHolder
from oncall.runtime import Runtime
from oncall.settings import Settings
from oncall.web.access_log import AccessLogger
from oncall.web.keys import CLOCK, DIRECTORY, REDIS, RUNTIME, SETTINGS
from oncall.web.middleware import errors, timing
from oncall.web.routes import actions, incidents, ingest, ops, schedules

log = logging.getLogger("oncall")


def make_redis(settings: Settings) -> Redis:
    """Return a Redis client that fails fast: short timeouts, no long retry loops."""
    timeout = settings.redis.socket_timeout.total_seconds()
    return Redis(
        host=settings.redis.host,
        port=settings.redis.port,
        password=settings.redis.password or None,
        db=settings.redis.db,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    runtime = await Runtime.open(app[SETTINGS], app[DIRECTORY], app[CLOCK])
    app[RUNTIME] = runtime
    try:
        await runtime.start()
        yield
    finally:
        await runtime.stop()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = make_redis(app[SETTINGS])
    app[REDIS] = client
    yield
    await client.aclose()


def create_app(
    settings: Settings, directory: DirectoryHolder, clock: Clock = system_clock
) -> web.Application:
    """Return the application; resources open on startup and close on cleanup."""
    app = web.Application(
        middlewares=[timing, errors], client_max_size=settings.server.max_body_bytes
    )
    app[SETTINGS] = settings
    app[DIRECTORY] = directory
    app[CLOCK] = clock
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_runtime)
    for routes in (ingest, incidents, schedules, actions, ops):
        routes.add_routes(app)
    return app


def run(settings: Settings, directory: DirectoryHolder) -> None:
    """Serve on `[server] host:port` until SIGTERM or SIGINT; SIGHUP reloads the directory."""
    app = create_app(settings, directory)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, ops.reload_directory, app)
        log.info(
            "oncall started",
            extra={
                "host": settings.server.host,
                "port": settings.server.port,
                "settings": settings.source,
                "directory": settings.directory.path,
            },
        )
        # Everything built at start-up (modules, tables, the directory) lives as long as
        # the process: moved out of the collector's generations, it is no longer traversed
        # by every full collection (BENCHMARKS.md).
        gc.collect()
        gc.freeze()

    app.on_startup.append(on_startup)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log_class=AccessLogger,
        print=None,
    )
