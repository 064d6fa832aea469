"""The middlewares: domain and HTTP errors as JSON in one place, and request latency."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from oncall.errors import OncallError, TooManyRequests
from oncall.web.keys import RUNTIME, SETTINGS

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Return the handler's response, or a JSON error with the right status.

    OncallError subclasses carry their status; aiohttp's own errors (404, 405, 413) keep
    theirs (a database error is an Unavailable from Database.run, the only way handlers
    reach the database); anything else unexpected is logged and answered 500 without
    details.
    """
    try:
        return await handler(request)
    except OncallError as error:
        headers = {"Retry-After": "5"} if error.status == 503 else None
        if error.status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="oncall"'}
        if isinstance(error, TooManyRequests):
            headers = {"Retry-After": str(error.retry_after)}
        return web.json_response(error.to_json(), status=error.status, headers=headers)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        message = error.reason
        if error.status == 413:
            limit = request.app[SETTINGS].server.max_body_bytes
            message = f"request body exceeds the limit of {limit} bytes"
        return web.json_response(
            {"error": message},
            status=error.status,
            headers={k: v for k, v in error.headers.items() if k in ("Allow",)},
        )
    except Exception:
        log.exception(
            "unhandled error", extra={"method": request.method, "path": request.rel_url.path}
        )
        return web.json_response({"error": "internal error"}, status=500)


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
        if RUNTIME in request.app:
            request.app[RUNTIME].metrics.requests.labels(
                route, request.method, str(status)
            ).observe(time.perf_counter() - started)
