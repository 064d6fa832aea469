"""The incidents API: list, read, acknowledge, resolve, and the other actions a responder
takes (notes, unacknowledge, escalate, reassign, responders, snooze); and the notifications sent
for them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from oncall.errors import InvalidInput
from oncall.incidents import actions, wakes
from oncall.incidents.lifecycle import STATUSES
from oncall.web.auth import require_user
from oncall.web.keys import CLOCK, RUNTIME
from oncall.web.params import (
    cursor_id,
    id_param,
    limit_param,
    make_cursor,
    read_json,
    statuses_param,
)
from oncall.web.views import (
    alert_json,
    change_json,
    event_json,
    incident_json,
    notification_json,
)

NOTIFICATION_STATUSES = ("pending", "sent", "failed", "cancelled", "folded")


async def list_incidents(request: web.Request) -> web.Response:
    require_user(request)
    query = request.rel_url.query
    statuses = statuses_param(query, STATUSES)
    limit = limit_param(query, 50)
    before = cursor_id(query["cursor"], "id") if query.get("cursor") else None
    rows = await request.app[RUNTIME].incidents.list_incidents(statuses, limit + 1, before)
    next_cursor = make_cursor("id", rows[limit - 1].id) if len(rows) > limit else None
    return web.json_response(
        {"incidents": [incident_json(r) for r in rows[:limit]], "next_cursor": next_cursor}
    )


async def get_incident(request: web.Request) -> web.Response:
    require_user(request)
    incident_id = id_param(request.match_info["id"], "id")
    runtime = request.app[RUNTIME]
    row, alerts, events = await runtime.incidents.details(incident_id)
    body = incident_json(row)
    body["alerts"] = [alert_json(a) for a in alerts]
    body["timeline"] = [event_json(e) for e in events]
    # What changed: its integration's change events of the 2 hours before it opened.
    changes = await runtime.ingest.changes_before(row.integration, row.created_at)
    body["changes"] = [change_json(c) for c in changes]
    return web.json_response(body)


async def acknowledge(request: web.Request) -> web.Response:
    user = require_user(request)
    result = await request.app[RUNTIME].incidents.acknowledge(
        id_param(request.match_info["id"], "id"), user.name, request.app[CLOCK]()
    )
    return web.json_response(incident_json(result.row))


async def resolve(request: web.Request) -> web.Response:
    user = require_user(request)
    result = await request.app[RUNTIME].incidents.resolve(
        id_param(request.match_info["id"], "id"), user.name, request.app[CLOCK]()
    )
    return web.json_response(incident_json(result.row))


async def _object(request: web.Request) -> dict[str, Any]:
    """Return the JSON object body (an empty body counts as `{}`); raises InvalidInput."""
    body = await read_json(request) if request.body_exists else {}
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", "$")
    return body


async def add_note(request: web.Request) -> web.Response:
    user = require_user(request)
    incident_id = id_param(request.match_info["id"], "id")
    text = actions.note_text((await _object(request)).get("text"))
    row = await request.app[RUNTIME].incidents.add_note(
        incident_id, user.name, text, request.app[CLOCK]()
    )
    return web.json_response(incident_json(row), status=201)


async def unacknowledge(request: web.Request) -> web.Response:
    user = require_user(request)
    result = await request.app[RUNTIME].incidents.unacknowledge(
        id_param(request.match_info["id"], "id"), user.name, request.app[CLOCK]()
    )
    return web.json_response(incident_json(result.row))


async def escalate(request: web.Request) -> web.Response:
    user = require_user(request)
    incident_id = id_param(request.match_info["id"], "id")
    level = actions.level_param((await _object(request)).get("level"))
    result = await request.app[RUNTIME].incidents.escalate(
        incident_id, user.name, level, request.app[CLOCK]()
    )
    return web.json_response(incident_json(result.row))


async def reassign(request: web.Request) -> web.Response:
    user = require_user(request)
    incident_id = id_param(request.match_info["id"], "id")
    incidents = request.app[RUNTIME].incidents
    policy = actions.reassign_target((await _object(request)).get("to"), incidents.directory())
    result = await incidents.reassign(incident_id, user.name, policy, request.app[CLOCK]())
    return web.json_response(incident_json(result.row))


async def snooze(request: web.Request) -> web.Response:
    user = require_user(request)
    incident_id = id_param(request.match_info["id"], "id")
    duration = wakes.snooze_duration((await _object(request)).get("duration"))
    result = await request.app[RUNTIME].incidents.snooze(
        incident_id, user.name, duration, request.app[CLOCK]()
    )
    return web.json_response(incident_json(result.row))


async def add_responder(request: web.Request) -> web.Response:
    user = require_user(request)
    incident_id = id_param(request.match_info["id"], "id")
    incidents = request.app[RUNTIME].incidents
    name = actions.user_param((await _object(request)).get("user"), incidents.directory())
    result = await incidents.add_responder(incident_id, user.name, name, request.app[CLOCK]())
    return web.json_response({**incident_json(result.row), "paged": result.changed})


async def list_notifications(request: web.Request) -> web.Response:
    """Notifications newest first, each with its attempts; `?status=failed` lists dead letters."""
    require_user(request)
    query = request.rel_url.query
    statuses = statuses_param(query, NOTIFICATION_STATUSES)
    incident = query.get("incident")
    incident_id = id_param(incident, "incident") if incident is not None else None
    limit = limit_param(query, 100)
    rows = await request.app[RUNTIME].notifier.list_notifications(statuses, incident_id, limit)
    return web.json_response(
        {"notifications": [notification_json(row, attempts) for row, attempts in rows]}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get(r"/api/v1/incidents/{id:\d+}", get_incident)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/acknowledge", acknowledge)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/resolve", resolve)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/notes", add_note)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/unacknowledge", unacknowledge)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/escalate", escalate)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/reassign", reassign)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/responders", add_responder)
    app.router.add_post(r"/api/v1/incidents/{id:\d+}/snooze", snooze)
    app.router.add_get("/api/v1/notifications", list_notifications)
