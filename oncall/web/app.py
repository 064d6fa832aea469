"""The application factory: settings and directory in, a ready aiohttp app out."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from oncall.clock import Clock, system_clock
from oncall.directory.holder import DirectoryHolder
from oncall.runtime import Runtime
from oncall.settings import Settings
from oncall.web.access_log import AccessLogger
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME, SETTINGS
from oncall.web.middleware import errors, timing
from oncall.web.routes import actions, audit, incidents, ingest, ops, schedules

log = logging.getLogger("oncall")


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    runtime = await Runtime.open(app[SETTINGS], app[DIRECTORY], app[CLOCK])
    app[RUNTIME] = runtime
    try:
        await runtime.start()
        yield
    finally:
        await runtime.stop()


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
    app.cleanup_ctx.append(_runtime)
    for routes in (ingest, incidents, schedules, actions, ops, audit):
        routes.add_routes(app)
    return app


def run(
    settings: Settings,
    directory: DirectoryHolder,
    early_reloads: Callable[[], int] = lambda: 0,
) -> None:
    """Serve on `[server] host:port` until SIGTERM or SIGINT; SIGHUP reloads the directory.

    `early_reloads` returns how many SIGHUPs arrived before this function's own handler
    was installed (the caller's handler counted them); one reload is applied for them once
    start-up has finished.
    """
    app = create_app(settings, directory)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        # Runs after the runtime's start-up (cleanup contexts come first): a reload is
        # only applied to a service that is ready. Installed before the count is taken,
        # so a SIGHUP counted at the last moment is still applied here.
        loop.add_signal_handler(signal.SIGHUP, ops.reload_directory, app)
        asked = early_reloads()
        if asked:
            log.info("applying a reload asked for during start-up", extra={"sighups": asked})
            ops.reload_directory(app)
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
