"""REST API and the Alertmanager webhook: parse, authenticate, call the service, answer JSON."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from oncall import jsonfmt, store, store_notify
from oncall.alertmanager import AlertGroup, parse_webhook
from oncall.clock import isoformat
from oncall.errors import InvalidInput, Unauthorized
from oncall.web.auth import require_integration, require_user
from oncall.web.keys import CLOCK, DATABASE, DIRECTORY, SERVICE
from oncall.web.views import alert_json, event_json, incident_json, notification_json

STATUSES = ("triggered", "acknowledged", "resolved")
MAX_LIMIT = 500


async def read_json(request: web.Request) -> Any:
    """Return the decoded JSON body; raises InvalidInput, or 413 past the body limit."""
    raw = await request.read()
    try:
        return jsonfmt.loads(raw)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise InvalidInput(f"invalid JSON: {exc}", "$") from None


async def alertmanager_webhook(request: web.Request) -> web.Response:
    counter = request.app[SERVICE].metrics.alerts
    try:
        integration = require_integration(request, "alertmanager")
    except Unauthorized:
        counter.labels("unknown", "unauthorized").inc()
        raise
    try:
        group = parse_webhook(await read_json(request))
    except InvalidInput:
        counter.labels(integration.name, "invalid").inc()  # one per rejected request
        raise
    now = request.app[CLOCK]()
    group = await _watchdogs(request, integration.name, group, now)
    if not group.alerts:
        return web.json_response({"status": "ok", "incidents": []})
    result = await request.app[SERVICE].ingest(integration, group, now)
    return web.json_response({"status": "ok", "incidents": result.incidents})


def statuses_param(query: Mapping[str, str], allowed: tuple[str, ...]) -> list[str]:
    """Return the comma-separated `status` filter; raises InvalidInput for unknown ones."""
    statuses = [s.strip() for s in query.get("status", "").split(",") if s.strip()]
    for status in statuses:
        if status not in allowed:
            raise InvalidInput(f"unknown status {status!r}; expected {', '.join(allowed)}",
                               "status")
    return statuses


def limit_param(query: Mapping[str, str], default: int) -> int:
    """Return the `limit` parameter (1 to MAX_LIMIT); raises InvalidInput."""
    try:
        limit = int(query.get("limit", str(default)))
    except ValueError:
        raise InvalidInput("expected an integer", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"expected 1 to {MAX_LIMIT}", "limit")
    return limit


async def _watchdogs(request: web.Request, integration: str, group: AlertGroup,
                     now: datetime) -> AlertGroup:
    """Ping the heartbeats fed by this integration's always-firing Watchdog alert, and
    return the group without it (a Watchdog is a ping, never an incident)."""
    heartbeats = [i for i in request.app[DIRECTORY].current.integrations.values()
                  if i.type == "heartbeat" and i.watchdog_of == integration]
    if not heartbeats:
        return group
    watchdog = [a for a in group.alerts if a.labels.get("alertname") == "Watchdog"]
    if not watchdog:
        return group
    if any(a.status == "firing" for a in watchdog):
        for heartbeat in heartbeats:
            await request.app[SERVICE].ping(heartbeat, now)
    rest = tuple(a for a in group.alerts if a.labels.get("alertname") != "Watchdog")
    return dataclasses.replace(group, alerts=rest)


async def heartbeat_ping(request: web.Request) -> web.Response:
    """`POST /api/v1/heartbeats/{name}` with the heartbeat's token: resets its deadline."""
    heartbeat = require_integration(request, "heartbeat")
    if heartbeat.name != request.match_info["name"]:
        raise Unauthorized("the token is not this heartbeat's", "Authorization")
    deadline = await request.app[SERVICE].ping(heartbeat, request.app[CLOCK]())
    return web.json_response({"status": "ok", "deadline": isoformat(deadline)})


def _cursor_id(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("not a cursor returned by this API", "cursor") from None


def _make_cursor(incident_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{incident_id}".encode()).decode().rstrip("=")


async def list_incidents(request: web.Request) -> web.Response:
    require_user(request)
    query = request.rel_url.query
    statuses = statuses_param(query, STATUSES)
    limit = limit_param(query, 50)
    before = _cursor_id(query["cursor"]) if query.get("cursor") else None
    rows = await request.app[DATABASE].run(store.list_incidents, statuses, limit + 1, before)
    next_cursor = _make_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return web.json_response({"incidents": [incident_json(r) for r in rows[:limit]],
                              "next_cursor": next_cursor})


async def get_incident(request: web.Request) -> web.Response:
    require_user(request)
    incident_id = int(request.match_info["id"])
    row, alerts, events = await request.app[DATABASE].run(store.incident_details, incident_id)
    body = incident_json(row)
    body["alerts"] = [alert_json(a) for a in alerts]
    body["timeline"] = [event_json(e) for e in events]
    return web.json_response(body)


async def acknowledge(request: web.Request) -> web.Response:
    user = require_user(request)
    now = request.app[CLOCK]()
    result = await request.app[SERVICE].acknowledge(int(request.match_info["id"]), user.name,
                                                    now)
    return web.json_response(incident_json(result.row))


async def resolve(request: web.Request) -> web.Response:
    user = require_user(request)
    now = request.app[CLOCK]()
    result = await request.app[SERVICE].resolve(int(request.match_info["id"]), user.name, now)
    return web.json_response(incident_json(result.row))


NOTIFICATION_STATUSES = ("pending", "sent", "failed", "cancelled")


async def list_notifications(request: web.Request) -> web.Response:
    """Notifications newest first, each with its attempts; `?status=failed` lists dead letters."""
    require_user(request)
    query = request.rel_url.query
    statuses = statuses_param(query, NOTIFICATION_STATUSES)
    incident = query.get("incident")
    if incident is not None and not incident.isdigit():
        raise InvalidInput("expected an incident id", "incident")
    limit = limit_param(query, 100)
    rows = await request.app[DATABASE].run(store_notify.list_notifications, statuses,
                                           int(incident) if incident else None, limit)
    return web.json_response({"notifications": [notification_json(row, attempts)
                                                for row, attempts in rows]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/integrations/alertmanager", alertmanager_webhook)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get(r"/api/v1/incidents/{id:\d+}", get_incident)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/acknowledge", acknowledge)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/resolve", resolve)
    app.router.add_get("/api/v1/notifications", list_notifications)
    app.router.add_post("/api/v1/heartbeats/{name}", heartbeat_ping)
