"""What operators and monitoring call: `/health` with one check per dependency, the
Alertmanager-style probes, `/-/reload`, and `/metrics`.

Anonymous callers get the overall health and the probes; the checks' details (hosts,
errors, queue counts) need the metrics token or an admin's API token, `/metrics` its token
(or the separate `[server] metrics_listen` listener), and a reload an admin's token.
"""

from __future__ import annotations

import asyncio
import copy
import hmac
import logging
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oncall.clock import isoformat
from oncall.directory.holder import log_warnings
from oncall.errors import ConfigError, Forbidden, Unauthorized
from oncall.runtime import Runtime
from oncall.tls import CertificateError
from oncall.web.auth import presented_token, require_admin
from oncall.web.coalesce import SingleFlight
from oncall.web.keys import CERTIFICATES, CLOCK, DIRECTORY, RUNTIME, SETTINGS

log = logging.getLogger(__name__)
CHECK_TIMEOUT = 2.0


async def _timed(probe: Awaitable[Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:  # a failing dependency is data here, not an error
        reason = str(exc) or type(exc).__name__
        return {"status": "fail", "error": reason[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _counts(runtime: Runtime, now: datetime) -> dict[str, int]:
    return {**await runtime.escalation.queue_stats(now), **await runtime.notifier.stats(now)}


def redis_check(runtime: Runtime) -> dict[str, Any]:
    """Return Redis's state as the circuit breaker last saw it: read, never waited for."""
    health = runtime.timers.health
    if health.healthy:
        return {"status": "ok"}
    return {
        "status": "fail",
        "error": (health.error or "unhealthy")[:300],
        "for_s": round(time.monotonic() - health.since, 1),
    }


async def read_queues(runtime: Runtime, now: datetime) -> dict[str, Any]:
    """Return the queues' state: `pending` jobs per store as the Redis probe last counted
    them (None while Redis is unhealthy) and the overdue and failed counts of steps and
    notifications (missing, with `counts_error`, when the database does not answer in
    time)."""
    timers = runtime.timers
    state: dict[str, Any] = {"pending": timers.pending if timers.health.healthy else None}
    try:
        state.update(await asyncio.wait_for(_counts(runtime, now), CHECK_TIMEOUT))
    except Exception as exc:
        state["counts_error"] = str(exc) or type(exc).__name__
    return state


def scheduler_verdict(
    app: web.Application, queues: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Return the timers' state: `queues` (see `read_queues`, read at `now`), whether the
    scheduler runs, reconciles. Awaits nothing, so that read next to `cluster_check` it
    tells the same moment's role.

    Fails when the scheduler is not running, a step is overdue or failed, a notification is
    overdue, or the reconciler has not succeeded within three intervals.
    """
    runtime = app[RUNTIME]
    status = runtime.reconciler.status
    check: dict[str, Any] = {
        "last_reconcile": isoformat(status.last_run),
        "reconcile_runs": int(runtime.metrics.value("oncall_reconcile_runs", outcome="ok")),
        "repairs": int(runtime.metrics.value("oncall_reconcile_repairs")),
    }
    problems = []
    check.update(queues)
    # Runs due jobs: started, and its gate open (a leader past its deadline runs nothing,
    # though its scheduler is stopped only when its renewal's wait ends, a moment later).
    check["running"] = runtime.timers.running and runtime.leadership.holds()
    if runtime.timers.dropped:
        check["dropped_while_unhealthy"] = runtime.timers.dropped
    if not runtime.timers.health.healthy:
        check["sweeping"] = True  # the database sweep fires what falls due
    if runtime.foreign:
        check["foreign_jobs"] = dict(runtime.foreign)
        problems.append(
            "jobs of other deployments fired from this one's job stores (two deployments "
            f"share [redis] key_prefix): {', '.join(sorted(runtime.foreign))}"
        )
    if "counts_error" in check:
        problems.append(f"queue state unreadable: {check.pop('counts_error')}")
    following = runtime.leadership.status().role == "follower"
    if following:
        check["following"] = True  # the leader runs the timers (the cluster check says who)
    elif not check["running"]:
        problems.append("scheduler not running")
    if check.get("overdue_steps"):
        problems.append(f"{check['overdue_steps']} escalation steps overdue")
    if check.get("failed_steps"):
        problems.append(f"{check['failed_steps']} escalation steps failed")
    if check.get("overdue_notifications"):
        problems.append(f"{check['overdue_notifications']} notifications overdue")
    # Failed notifications are dead letters kept for inspection: counted, not failing.
    interval = app[SETTINGS].scheduler.reconcile_interval
    if following:
        pass  # the leader reconciles
    elif status.last_run is None or now - status.last_run > 3 * interval:
        problems.append(
            f"no successful reconcile within {3 * interval}"
            + (f": {status.last_error}" if status.last_error else "")
        )
    check["status"] = "fail" if problems else "ok"
    if problems:
        check["error"] = "; ".join(problems)
    return check


def cluster_check(runtime: Runtime) -> dict[str, Any]:
    """Return this instance's role, who leads and since when, as the last try for the
    lease saw it: read, never waited for. Fails when nobody leads (as far as this
    instance can tell)."""
    status = runtime.leadership.status()
    check: dict[str, Any] = {
        "role": status.role,
        "instance": status.instance,
        "instance_id": status.instance_id,
        "leader": status.leader,
        "leader_id": status.leader_id,
        "since": isoformat(status.since),
        "term": status.term,
    }
    if status.role == "leader" or status.leader is not None:
        check["status"] = "ok"
    else:
        check["status"] = "fail"
        check["error"] = "no instance leads" + (f": {status.error}" if status.error else "")
    return check


async def run_checks(app: web.Application) -> dict[str, dict[str, Any]]:
    """Return each dependency's check result, run concurrently, each bounded in time."""
    runtime = app[RUNTIME]
    now = app[CLOCK]()
    database, queues = await asyncio.gather(_timed(runtime.db.ping()), read_queues(runtime, now))
    # Both read here, after every await: whether the scheduler runs and the role are one
    # moment's (the awaits may take the database's timeouts, across a step-down).
    return {
        "database": database,
        "redis": redis_check(runtime),
        "scheduler": scheduler_verdict(app, queues, now),
        "cluster": cluster_check(runtime),
    }


class Shared:
    """The computations concurrent callers share: the health checks and /metrics' text."""

    def __init__(self, app: web.Application) -> None:
        self.checks = SingleFlight(lambda: run_checks(app))
        self.metrics = SingleFlight(lambda: render_metrics(app))
        # Reloads one after another, so the last file read is the one that stays active.
        self.reloads = asyncio.Lock()


SHARED = web.AppKey("ops_shared", Shared)


def is_metrics_token(app: web.Application, token: str | None) -> bool:
    """Return whether `token` is the configured metrics token (never when none is set)."""
    expected = app[SETTINGS].server.metrics_token
    return bool(expected and token) and hmac.compare_digest(
        (token or "").encode(), expected.encode()
    )


def may_see_details(request: web.Request) -> bool:
    """Return whether the caller may see /health's checks: False without a credential,
    True for the metrics token or an admin's API token.

    Raises Unauthorized for any other token, Forbidden for a responder's: a monitor with a
    wrong token hears so instead of getting less than it asked for.
    """
    token = presented_token(request)
    if token is None:
        return False
    if is_metrics_token(request.app, token):
        return True
    require_admin(request)
    return True


async def health(request: web.Request) -> web.Response:
    details = may_see_details(request)
    checks = await request.app[SHARED].checks()
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    body: dict[str, Any] = {"status": "fail" if failing else "ok"}
    if details:
        body["checks"] = checks
        if failing:
            body["failing"] = failing
    return web.json_response(body, status=503 if failing else 200)


async def healthy(_request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    """Ready means alerts can be accepted: the database answers (Redis only holds timers)."""
    check = await _timed(request.app[RUNTIME].db.ping())
    if check["status"] != "ok":
        return web.Response(status=503, text=f"not ready: database: {check['error']}\n")
    return web.Response(text="OK\n")


async def reload_directory(app: web.Application) -> list[str]:
    """Re-read the directory file; return its problems (empty when the new file is active).

    The file is read and parsed in a worker thread (YAML parsing would hold up every
    request); the parsed directory is swapped in on the event loop, whole.
    """
    holder = app[DIRECTORY]
    async with app[SHARED].reloads:
        # A copy of the holder reads the file as the holder does (its source, its env
        # file) and activates the result only in itself.
        scratch = copy.copy(holder)
        try:
            directory = await asyncio.get_running_loop().run_in_executor(None, scratch.reload)
        except ConfigError as error:
            log.error(
                "directory reload rejected; the previous file stays active",
                extra={"problems": error.problems},
            )
            return error.problems
        holder.current = directory
    log.info(
        "directory reloaded", extra={"source": directory.source, "users": len(directory.users)}
    )
    log_warnings(directory, app[CLOCK]())  # advice on the new file; it is active regardless
    if RUNTIME in app:
        # The file's maintenance windows hold or release incidents now, not at the next
        # reconcile (a failure is logged; the reconciler applies them then).
        await app[RUNTIME].maintenance.apply_edge()
    return []


async def reload_certificates(app: web.Application) -> str | None:
    """Re-read `[server] tls_cert_file` and `tls_key_file` (when TLS is on); return why
    they were not taken, None when new connections now get them (or there is no TLS).

    The files are loaded into a new context in a worker thread; only a whole, working one
    replaces the current, so a broken file leaves the previous certificate served."""
    if CERTIFICATES not in app:
        return None
    certificates = app[CERTIFICATES]
    async with app[SHARED].reloads:
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, certificates.read)
        except CertificateError as error:
            log.error(
                "TLS certificate reload rejected; the previous certificate stays",
                extra={"error": error.named()},
            )
            return error.named()
        certificates.activate(loaded)
    log.info(
        "TLS certificate reloaded",
        extra={
            "subject": loaded.subject,
            "serial": f"{loaded.serial:x}",
            "not_after": isoformat(loaded.not_after),
        },
    )
    return None


async def reload_all(app: web.Application) -> tuple[list[str], str | None]:
    """Reload the directory file and the TLS certificate: what SIGHUP and /-/reload do.
    Return the directory's problems and the certificate's."""
    return await reload_directory(app), await reload_certificates(app)


async def reload(request: web.Request) -> web.Response:
    admin = require_admin(request)
    problems, certificate = await reload_all(request.app)
    app = request.app
    detail: dict[str, Any] = {
        "outcome": "rejected" if problems else "applied",
        "problems": len(problems),
    }
    if CERTIFICATES in app:
        detail["certificate"] = "rejected" if certificate else "reloaded"
    await app[RUNTIME].audit.record(
        admin.name, "directory.reload", app[SETTINGS].directory.path, detail, app[CLOCK]()
    )
    errors = []
    if problems:
        # The problems quote the file, secrets included: they go to the log only.
        errors.append("invalid directory file, see the log")
    if certificate:
        # Paths and OpenSSL's reason only: nothing of the files' contents.
        errors.append(f"TLS certificate not reloaded, the previous one stays: {certificate}")
    if errors:
        return web.json_response({"error": "; ".join(errors)}, status=400)
    return web.json_response({"status": "ok"})


async def render_metrics(app: web.Application) -> bytes:
    """Return the Prometheus exposition, the gauges updated from the queues' state first.

    On a Redis or database error the affected gauges keep their last values; /health says
    what is wrong.
    """
    runtime = app[RUNTIME]
    gauges = runtime.metrics
    state = await read_queues(runtime, app[CLOCK]())
    for store, count in (state["pending"] or {}).items():
        gauges.pending.labels(store).set(count)
    if "counts_error" not in state:
        gauges.overdue.set(state["overdue_steps"])
        gauges.failed_steps.set(state["failed_steps"])
        gauges.failed_notifications.set(state["failed_notifications"])
    return bytes(generate_latest(gauges.registry))


async def metrics_response(app: web.Application) -> web.Response:
    """Return /metrics' response; scrapers asking together share one rendering, so that
    many of them cost the database and the event loop what one does."""
    body = await app[SHARED].metrics()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def metrics(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].server.metrics_token:
        raise Forbidden(
            "/metrics on this port needs [server] metrics_token; or set [server] "
            "metrics_listen to serve it without a token on another address"
        )
    if not is_metrics_token(request.app, presented_token(request)):
        raise Unauthorized("missing or invalid metrics token", "Authorization")
    return await metrics_response(request.app)


def add_routes(app: web.Application) -> None:
    app[SHARED] = Shared(app)
    app.router.add_get("/health", health)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/metrics", metrics)
