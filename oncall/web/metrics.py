"""`GET /metrics` (Prometheus exposition) and the request-latency middleware."""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oncall.web.auth import presented_token
from oncall.web.health import read_queues
from oncall.web.keys import CLOCK, SERVICE, SETTINGS
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
    state = await read_queues(request.app, request.app[CLOCK]())
    # On a Redis or database error the affected gauges keep their last values; /health
    # says what is wrong.
    for store, count in (state["pending"] or {}).items():
        gauges.pending.labels(store).set(count)
    if "counts_error" not in state:
        gauges.overdue.set(state["overdue_steps"])
        gauges.failed_steps.set(state["failed_steps"])
        gauges.failed_notifications.set(state["failed_notifications"])
    return web.Response(body=generate_latest(gauges.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
