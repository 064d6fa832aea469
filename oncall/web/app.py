"""The application factory: settings and directory in, a ready aiohttp app out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from oncall import background, jobs, migrate, store_notify
from oncall.clock import Clock, system_clock
from oncall.config import Settings
from oncall.db import Database, make_engine
from oncall.directory import DirectoryHolder
from oncall.notifier import Notifier
from oncall.reconcile import Reconciler, watchdog
from oncall.service import Service
from oncall.timer import Timers
from oncall.web import api, events, health, links, metrics, schedules
from oncall.web.keys import (
    CLOCK,
    DATABASE,
    DIRECTORY,
    LINK_KEY,
    NOTIFIER,
    RECONCILER,
    REDIS,
    SERVICE,
    SETTINGS,
    TIMERS,
)
from oncall.web.middleware import errors

log = logging.getLogger(__name__)
JOB_GRACE = 5.0  # seconds running jobs get to finish at shutdown


def make_redis(settings: Settings) -> Redis:
    """Return a Redis client that fails fast: short timeouts, no long retry loops."""
    timeout = settings.redis.socket_timeout.total_seconds()
    return Redis(host=settings.redis.host, port=settings.redis.port,
                 password=settings.redis.password or None, db=settings.redis.db,
                 socket_timeout=timeout, socket_connect_timeout=timeout,
                 retry=Retry(NoBackoff(), 1))


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database)
    await migrate.upgrade(engine, settings.database.schema)
    database = Database(engine, settings.database.writer,
                        (settings.server.log_format, settings.server.log_level))
    app[DATABASE] = database
    secret = settings.security.secret_key
    # Without a configured key, one is generated once and kept in the database, so links
    # in pages already sent stay valid across restarts.
    app[LINK_KEY] = secret.encode() if secret else await database.run(store_notify.link_secret)
    service = Service(database, app[DIRECTORY], app[CLOCK])
    service.notifier = Notifier(database, app[DIRECTORY], settings, app[CLOCK], app[LINK_KEY])
    service.notifier.metrics = service.metrics
    app[SERVICE] = service
    app[NOTIFIER] = service.notifier
    yield
    await service.notifier.close()
    await database.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    client = make_redis(app[SETTINGS])
    app[REDIS] = client
    yield
    await client.aclose()


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Start the timers: reconcile from the database first, then let jobs fire."""
    settings = app[SETTINGS]
    service = app[SERVICE]
    timers = Timers(settings.redis)
    service.timers = timers
    app[NOTIFIER].timers = timers
    jobs.install(service)
    reconciler = Reconciler(app[DATABASE], timers, service, app[DIRECTORY], app[CLOCK])
    app[TIMERS] = timers
    app[RECONCILER] = reconciler
    try:
        await reconciler.run_once()
    except Exception as error:  # Redis down at start-up: alerts are still taken
        log.warning("start-up reconcile failed; retrying every reconcile_interval",
                    extra={"error": repr(error)})
    timers.start()
    tasks = [asyncio.create_task(reconciler.loop(settings.scheduler.reconcile_interval)),
             asyncio.create_task(watchdog(timers, reconciler))]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # No new jobs start; running ones get JOB_GRACE to finish, then are cancelled (an
    # unfinished page is sent again after restart). Shutting APScheduler down first would
    # cancel them at once.
    timers.pause()
    await background.drain(JOB_GRACE)  # job runs and pages being sent
    await timers.shutdown()
    jobs.uninstall(service)
    timers.close()


def create_app(settings: Settings, directory: DirectoryHolder,
               clock: Clock = system_clock) -> web.Application:
    """Return the application; resources open on startup and close on cleanup."""
    app = web.Application(middlewares=[metrics.timing, errors],
                          client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[DIRECTORY] = directory
    app[CLOCK] = clock
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_scheduler)
    api.add_routes(app)
    health.add_routes(app)
    links.add_routes(app)
    schedules.add_routes(app)
    metrics.add_routes(app)
    events.add_routes(app)
    return app
