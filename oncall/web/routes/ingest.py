"""Where alerts come in: the Alertmanager webhook, Grafana's webhook (also taken by the
Alertmanager one), heartbeat pings, and PagerDuty's Events API v2 (`POST /v2/enqueue`, also
`/api/v1/integrations/events`).

Events v2 answers as PagerDuty does, so its clients (Alertmanager's pagerduty_configs among
them) work unchanged: 202 with the dedup_key, 400 with every error, 413, 429 with
Retry-After. Its change events (`POST /v2/change/enqueue`) answer the same way.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from oncall.clock import isoformat
from oncall.db import jsoncodec
from oncall.directory.model import Integration
from oncall.errors import InvalidInput, PayloadTooLarge, TooManyRequests, Unauthorized
from oncall.ingest.alertmanager import AlertGroup
from oncall.ingest.events_v2 import (
    MAX_BODY,
    ChangeEvent,
    Event,
    InvalidEvent,
    parse_change_event,
    parse_event,
)
from oncall.ingest.grafana import parse_alert_webhook, parse_grafana
from oncall.web.auth import count_failure, refuse_if_throttled, require_integration
from oncall.web.bodies import SMALL_BODY, read_body
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME, SETTINGS
from oncall.web.params import read_json


async def alertmanager_webhook(request: web.Request) -> web.Response:
    """Alertmanager's webhook (version "4"), and Grafana's (version "1"), for an
    alertmanager or a grafana integration."""
    return await _group_webhook(request, ("alertmanager", "grafana"), parse_alert_webhook)


async def grafana_webhook(request: web.Request) -> web.Response:
    """Grafana's webhook contact point (POST, or PUT as it may be set to send)."""
    return await _group_webhook(request, ("grafana",), parse_grafana)


async def _group_webhook(
    request: web.Request, types: tuple[str, ...], parse: Callable[[Any], AlertGroup]
) -> web.Response:
    """A webhook of alert groups, its token checked before its body (of `[server]
    max_body_bytes`) is read."""
    runtime = request.app[RUNTIME]
    counter = runtime.metrics.alerts
    try:
        integration = require_integration(request, *types)
    except Unauthorized:
        counter.labels("unknown", "unauthorized").inc()
        raise
    try:
        body = await read_json(request, request.app[SETTINGS].server.max_body_bytes)
        group = parse(body)
    except InvalidInput:
        counter.labels(integration.name, "invalid").inc()  # one per rejected request
        raise
    result = await runtime.ingest.ingest(integration, group, request.app[CLOCK]())
    return web.json_response({"status": "ok", "incidents": result.incidents}, dumps=jsoncodec.dumps)


async def heartbeat_ping(request: web.Request) -> web.Response:
    """`POST /api/v1/heartbeats/{name}` with the heartbeat's token: resets its deadline."""
    heartbeat = require_integration(request, "heartbeat")
    if heartbeat.name != request.match_info["name"]:
        raise Unauthorized("the token is not this heartbeat's", "Authorization")
    # A ping's body (a job's output, say) is not kept: any encoding will do.
    await read_body(request, SMALL_BODY, content=False)
    deadline = await request.app[RUNTIME].ingest.ping(heartbeat, request.app[CLOCK]())
    return web.json_response({"status": "ok", "deadline": isoformat(deadline)})


EventT = TypeVar("EventT", Event, ChangeEvent)


def _invalid(errors: list[str]) -> web.Response:
    return web.json_response(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status=400,
    )


async def _accepted(
    request: web.Request, parse: Callable[[Any], EventT], kind: str
) -> tuple[EventT, Integration, datetime] | web.Response:
    """Return an Events v2 body parsed, its integration and the time, or the answer that
    refuses it as PagerDuty would (413, 400 with every error, 429 with Retry-After).

    Its credential (the routing key) is inside the body, so the body is read first, but
    never more than MAX_BODY of it, nor for longer than `[server] body_timeout`."""
    try:
        raw = await read_body(request, MAX_BODY)
    except PayloadTooLarge:
        return web.json_response(
            {
                "status": "invalid event",
                "message": f"Request bodies are limited to {MAX_BODY} bytes",
            },
            status=413,
        )
    try:
        event = parse(jsoncodec.loads(raw))
    except jsoncodec.TooDeep as error:
        return _invalid([f"Request body is {error}"])
    except ValueError:  # not JSON, not UTF-8
        return _invalid(["Request body is not valid JSON"])
    except InvalidEvent as error:
        return _invalid(error.errors)
    integration = request.app[DIRECTORY].current.integration_for_token(
        "events_v2", event.routing_key
    )
    runtime = request.app[RUNTIME]
    if integration is None:
        runtime.metrics.alerts.labels("unknown", "unauthorized").inc()
        # A wrong routing key is a failed login like a wrong token (a right one always
        # passes, as for every alert source: see require_integration).
        try:
            refuse_if_throttled(request)
        except TooManyRequests as error:
            return web.json_response(
                {"status": "throttle event", "message": str(error)},
                status=429,
                headers={"Retry-After": str(error.retry_after)},
            )
        count_failure(request)
        return _invalid(["Invalid routing key"])
    now = request.app[CLOCK]()
    wait = runtime.ingest.rate_limited(integration, now, kind)
    if wait is not None:
        return web.json_response(
            {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. Please retry "
                "later.",
            },
            status=429,
            headers={"Retry-After": str(math.ceil(wait.total_seconds()))},
        )
    return event, integration, now


async def enqueue(request: web.Request) -> web.Response:
    """An alert event: trigger, acknowledge or resolve."""
    accepted = await _accepted(request, parse_event, "event")
    if isinstance(accepted, web.Response):
        return accepted
    event, integration, now = accepted
    if event.dedup_key is None:  # a trigger without one gets one, returned to the sender
        event = dataclasses.replace(event, dedup_key=uuid.uuid4().hex)
    await request.app[RUNTIME].ingest.ingest_event(integration, event, now)
    return web.json_response(
        {"status": "success", "message": "Event processed", "dedup_key": event.dedup_key},
        status=202,
    )


async def change_enqueue(request: web.Request) -> web.Response:
    """A change event (`POST /v2/change/enqueue`): stored for its integration's incidents
    to show; it opens nothing and pages nobody."""
    accepted = await _accepted(request, parse_change_event, "change")
    if isinstance(accepted, web.Response):
        return accepted
    change, integration, now = accepted
    await request.app[RUNTIME].ingest.add_change(integration, change, now)
    return web.json_response({"status": "success", "message": "Change event processed"}, status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/integrations/alertmanager", alertmanager_webhook)
    app.router.add_post("/api/v1/integrations/grafana", grafana_webhook)
    app.router.add_put("/api/v1/integrations/grafana", grafana_webhook)
    app.router.add_post("/api/v1/heartbeats/{name}", heartbeat_ping)
    app.router.add_post("/v2/enqueue", enqueue)
    app.router.add_post("/v2/change/enqueue", change_enqueue)
    app.router.add_post("/api/v1/integrations/events", enqueue)
