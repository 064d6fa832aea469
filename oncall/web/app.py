"""The application factory: settings and directory in, a ready aiohttp app out; and the
process that serves it."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from oncall.clock import Clock, system_clock
from oncall.directory.holder import DirectoryHolder, log_warnings
from oncall.errors import ConfigError
from oncall.runtime import Runtime
from oncall.settings import Settings
from oncall.tls import CertificateError, Certificates
from oncall.web import bad_requests, connections, headers, openapi, ping, sessions
from oncall.web.access_log import AccessLogger
from oncall.web.keys import CERTIFICATES, CLOCK, DIRECTORY, RUNTIME, SETTINGS
from oncall.web.middleware import errors, timing
from oncall.web.pages import routes as pages
from oncall.web.routes import (
    actions,
    audit,
    incidents,
    ingest,
    maintenance,
    ops,
    schedules,
    simulate,
)
from oncall.web.routes import users as user_routes

log = logging.getLogger("oncall")
# aiohttp closes a connection that has not sent a whole request within this long of its
# start or of its last response, which also bounds a client sending its headers a byte at
# a time. Longer than reverse proxies keep idle upstream connections (nginx's default is
# 60 s), so a proxy never reuses a connection this side has just closed.
KEEPALIVE_TIMEOUT = 75.0


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
    """Return the application; resources open on startup and close on cleanup.

    Raises ConfigError when the TLS files no longer load (they did when the settings were
    read)."""
    app = web.Application(
        middlewares=[timing, errors], client_max_size=settings.server.max_body_bytes
    )
    app[SETTINGS] = settings
    app[DIRECTORY] = directory
    app[CLOCK] = clock
    server = settings.server
    if server.tls:
        try:
            app[CERTIFICATES] = Certificates(server.tls_cert_file, server.tls_key_file)
        except CertificateError as error:
            raise ConfigError([error.named()]) from None
    secure = sessions.secure_cookies(settings.server.public_url)
    app.middlewares.append(sessions.middleware(sessions.SessionStorage(app, secure)))
    app.cleanup_ctx.append(_runtime)
    if settings.monitoring.ping_url:
        app.cleanup_ctx.append(ping.pinging)  # after the runtime: it pings what that runs
    headers.install(app)
    for routes in (ingest, incidents, schedules, actions, ops, audit, maintenance, simulate):
        routes.add_routes(app)
    user_routes.add_routes(app)
    openapi.add_routes(app)
    pages.add_routes(app)
    return app


def create_metrics_app(main: web.Application) -> web.Application:
    """Return the app of the `[server] metrics_listen` listener: `/metrics` of `main`, and
    nothing else, without a token (the address it listens on is what protects it)."""

    async def scrape(_request: web.Request) -> web.Response:
        return await ops.metrics_response(main)

    app = web.Application(middlewares=[errors])
    app[SETTINGS] = main[SETTINGS]
    headers.install(app)
    app.router.add_get("/metrics", scrape)
    return app


def run(
    settings: Settings,
    directory: DirectoryHolder,
    early_reloads: Callable[[], int] = lambda: 0,
) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads the directory and the TLS certificate.

    `early_reloads` returns how many SIGHUPs arrived before this function's own handler
    was installed (the caller's handler counted them); one reload is applied for them once
    start-up has finished.
    """
    before, after = connections.raise_file_limit()
    if after != before:
        log.info("raised the open files limit", extra={"before": before, "after": after})
    asyncio.run(serve(create_app(settings, directory), early_reloads))


class Service:
    """The listeners of one app: `[server] host:port` (HTTPS when its certificate is set)
    and, when set, `metrics_listen` (plain HTTP: a local scraper's address, which is what
    protects it), each connection counted against its client address."""

    def __init__(self, app: web.Application) -> None:
        server = app[SETTINGS].server
        self.app = app
        self.limits = connections.ConnectionLimit(server.max_connections_per_address)
        self.refusals = connections.LogThrottle()
        self.runners: list[web.AppRunner] = []
        self.sites: list[connections.LimitedSite] = []

    def _runner(self, app: web.Application) -> web.AppRunner:
        # auto_decompress: aiohttp would inflate a `Content-Encoding: gzip` body on the event
        # loop as it arrives, before any handler or cap, so a small anonymous body became
        # gigabytes of work; read_body refuses encoded bodies instead.
        runner = web.AppRunner(
            app,
            access_log_class=AccessLogger,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            auto_decompress=False,
        )
        self.runners.append(runner)
        return runner

    async def start(self) -> None:
        """Start the app (its runtime first), then listen."""
        server = self.app[SETTINGS].server
        main = self._runner(self.app)
        await main.setup()
        certificates = self.app.get(CERTIFICATES)
        self.sites.append(
            connections.LimitedSite(
                main,
                server.host,
                server.port,
                self.limits,
                self.refusals,
                certificates.listening if certificates is not None else None,
            )
        )
        if server.metrics_listen:
            host, port = connections.split_listen_address(server.metrics_listen)
            metrics = self._runner(create_metrics_app(self.app))
            await metrics.setup()
            self.sites.append(
                connections.LimitedSite(metrics, host, port, self.limits, self.refusals)
            )
        for site in self.sites:
            await site.start()

    async def stop(self) -> None:
        """Close the listeners, let requests under way finish, stop the runtime."""
        for runner in reversed(self.runners):
            await runner.cleanup()


async def serve(app: web.Application, early_reloads: Callable[[], int] = lambda: 0) -> None:
    """Serve `app` until SIGTERM or SIGINT, then stop gracefully."""
    settings = app[SETTINGS]
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    # Installed before start-up, as aiohttp's own runner does: a stop asked for while the
    # service starts cancels the start-up.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    loop.set_exception_handler(connections.throttled_accept_errors(loop, connections.LogThrottle()))
    bad_requests.install(connections.LogThrottle())
    reloads: set[asyncio.Task[tuple[list[str], str | None]]] = set()

    def on_sighup() -> None:
        task = asyncio.ensure_future(ops.reload_all(app))
        reloads.add(task)  # held until done: the loop keeps only a weak reference
        task.add_done_callback(reloads.discard)

    async def on_startup(app: web.Application) -> None:
        # Runs after the runtime's start-up (cleanup contexts come first): a reload is
        # only applied to a service that is ready. Installed before the count is taken,
        # so a SIGHUP counted at the last moment is still applied here.
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        asked = early_reloads()
        if asked:
            log.info("applying a reload asked for during start-up", extra={"sighups": asked})
            await ops.reload_all(app)

    app.on_startup.append(on_startup)
    service = Service(app)
    starting = asyncio.ensure_future(service.start())
    stopping = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            return  # stopped during start-up: `finally` cleans up what started
        starting.result()  # a failed start-up raises here
        log.info(
            "oncall started",
            extra={
                "host": settings.server.host,
                "port": settings.server.port,
                "tls": settings.server.tls,
                "metrics_listen": settings.server.metrics_listen or None,
                "settings": settings.source,
                "directory": settings.directory.path,
            },
        )
        # Advice on the file (gaps, shadowed routes...): logged, never a reason not to start.
        log_warnings(app[DIRECTORY].current, app[CLOCK]())
        # Everything built at start-up (modules, tables, the directory) lives as long as
        # the process: moved out of the collector's generations, it is no longer traversed
        # by every full collection (BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        await stopping
    finally:
        for task in (starting, stopping):
            task.cancel()
        await asyncio.gather(starting, stopping, return_exceptions=True)
        await service.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
