"""`GET /metrics` (Prometheus exposition) and the request-latency middleware."""

from __future__ import annotations

import asyncio
import hmac
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oncall import store_escalation, store_notify
from oncall.web.auth import presented_token
from oncall.web.keys import CLOCK, DATABASE, SERVICE, SETTINGS, TIMERS
from oncall.web.middleware import Handler


@web.middleware
async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe every request's latency under its route template (never the raw path)."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        if SERVICE in request.app:
            request.app[SERVICE].metrics.requests.labels(
                route, request.method, str(status)).observe(time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    expected = request.app[SETTINGS].server.metrics_token
    if expected and not hmac.compare_digest((presented_token(request) or "").encode(),
                                            expected.encode()):
        return web.json_response({"error": "missing or invalid metrics token",
                                  "field": "Authorization"}, status=401)
    gauges = request.app[SERVICE].metrics
    try:
        pending = await asyncio.wait_for(asyncio.to_thread(request.app[TIMERS].pending_counts),
                                         2.0)
        for store, count in pending.items():
            gauges.pending.labels(store).set(count)
    except Exception:  # Redis down: the gauges keep their last values; /health says why
        pass
    now = request.app[CLOCK]()
    steps = await request.app[DATABASE].run(store_escalation.queue_stats, now)
    notes = await request.app[DATABASE].run(store_notify.notification_stats, now)
    gauges.overdue.set(steps["overdue_steps"])
    gauges.failed_steps.set(steps["failed_steps"])
    gauges.failed_notifications.set(notes["failed_notifications"])
    return web.Response(body=generate_latest(gauges.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
