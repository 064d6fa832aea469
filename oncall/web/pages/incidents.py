"""The incidents pages: `/`, the incidents with their status filter, search, counts and
pages of older ones; `/incidents/{id}`, one incident with its alerts, timeline, pages sent
and the actions a responder takes, each a small form posting to `/incidents/{id}/ACTION`.

The handlers turn rows into what the templates show (links only for http(s) URLs, timeline
entries in words); every action calls the service method the API calls, with the API's
own parsers of its fields, and answers 303 to the incident's page."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from oncall.directory.model import Directory, User
from oncall.errors import InvalidInput
from oncall.escalation.policies import USER_POLICY, policy_named
from oncall.incidents import actions, wakes
from oncall.incidents.lifecycle import ACKNOWLEDGED, RESOLVED, STATUSES, TRIGGERED
from oncall.incidents.service import Incidents
from oncall.ingest.context import AlertContext, stored_context
from oncall.ingest.text import one_line
from oncall.notify.messages import web_url
from oncall.web.keys import CLOCK, RUNTIME
from oncall.web.pages.base import form_of, page, render, see_other
from oncall.web.params import cursor_id, id_param, make_cursor

LIST_LIMIT = 50
OPEN = (TRIGGERED, ACKNOWLEDGED)  # what `/` shows unless told otherwise
ALL = "all"
MAX_SEARCH = 200  # characters
PAGES_SHOWN = 200  # the newest pages sent for one incident
SNOOZE_CHOICES = ("15m", "30m", "1h", "2h", "4h", "8h", "24h")
# Annotations of an Events v2 trigger stored before its context had columns of its own,
# carrying its `links` and `images` as JSON lists.
EVENT_LINKS = ("links", "images")
EVENT_WORDS = {
    "incident.triggered": "Triggered",
    "incident.routed": "Routed",
    "incident.acknowledged": "Acknowledged",
    "incident.unacknowledged": "Unacknowledged",
    "incident.resolved": "Resolved",
    "incident.note": "Note",
    "incident.escalated": "Escalated by hand",
    "incident.reassigned": "Reassigned",
    "incident.responder_added": "Responder added",
    "incident.snoozed": "Snoozed",
    "incident.snooze_ended": "Snooze ended",
    "incident.ack_timeout": "Acknowledgement timed out",
    "incident.refired": "Fired again",
    "alert.added": "Alert added",
    "alert.refired": "Alert fired again",
    "alert.resolved": "Alert resolved",
    "escalation.level": "Escalated to a level",
    "escalation.exhausted": "Escalation exhausted",
    "escalation.failed": "Escalation failed",
    "escalation.nobody_on_call": "Nobody on call",
    "escalation.policy_changed": "Policy changed",
    "escalation.rerouted": "Rerouted",
    "notification.sent": "Page sent",
    "notification.failed": "Page failed",
    "notification.folded": "Page folded into a digest",
    "notification.skipped": "Page skipped",
    "maintenance.suppressed": "Held by maintenance",
    "maintenance.released": "Released by maintenance",
}


# The list.


def list_statuses(values: Sequence[str]) -> list[str]:
    """Return the statuses `/` shows from its repeated `status` parameters (each may also
    hold several, comma-separated): none given means OPEN, `all` means every one (an
    empty filter). Raises InvalidInput naming `status`."""
    wanted = [s.strip() for value in values for s in value.split(",") if s.strip()]
    if not wanted:
        return list(OPEN)
    if ALL in wanted:
        return []
    for status in wanted:
        if status not in STATUSES:
            raise InvalidInput(
                f"unknown status {status[:40]!r}; expected {', '.join(STATUSES)} or all", "status"
            )
    return [s for s in STATUSES if s in wanted]


def search_text(value: str | None) -> str | None:
    """Return the search `q` on one line and trimmed (None: no search); raises
    InvalidInput naming `q` when it is longer than MAX_SEARCH."""
    text = one_line(value or "").strip()
    if len(text) > MAX_SEARCH:
        raise InvalidInput(f"a search is at most {MAX_SEARCH} characters", "q")
    return text or None


def status_values(statuses: Sequence[str]) -> list[str]:
    """Return the `status` parameters that ask `/` for `statuses` (empty: all)."""
    if not statuses:
        return [ALL]
    return [] if list(statuses) == list(OPEN) else list(statuses)


def list_url(statuses: Sequence[str], search: str | None, cursor: str | None = None) -> str:
    """Return the address of `/` showing `statuses` (empty: all), found by `search`."""
    params = [("status", value) for value in status_values(statuses)]
    if search:
        params.append(("q", search))
    if cursor:
        params.append(("cursor", cursor))
    return f"/?{urlencode(params)}" if params else "/"


def filter_links(
    statuses: Sequence[str], counts: Mapping[str, int], search: str | None
) -> list[dict[str, Any]]:
    """Return the status filters with their counts: open, each status, all; the one shown
    now is `current`."""
    choices: list[tuple[str, list[str]]] = [
        ("open", list(OPEN)),
        *((status, [status]) for status in STATUSES),
        (ALL, []),
    ]
    return [
        {
            "label": label,
            "count": sum(counts.get(s, 0) for s in (chosen or STATUSES)),
            "href": list_url(chosen, search),
            "current": chosen == list(statuses),
        }
        for label, chosen in choices
    ]


@page
async def incident_list(request: web.Request, _user: User) -> web.StreamResponse:
    query = request.rel_url.query
    statuses = list_statuses(query.getall("status", []))
    search = search_text(query.get("q"))
    before = cursor_id(query["cursor"], "id") if query.get("cursor") else None
    service = request.app[RUNTIME].incidents
    rows = await service.list_incidents(statuses, LIST_LIMIT + 1, before, search)
    counts = await service.count_incidents(search)
    older = None
    if len(rows) > LIST_LIMIT:
        older = list_url(statuses, search, make_cursor("id", rows[LIST_LIMIT - 1].id))
    context = {
        "incidents": rows[:LIST_LIMIT],
        "filters": filter_links(statuses, counts, search),
        "search": search or "",
        "clear_search": list_url(statuses, None),
        # The search form keeps the filter shown: its statuses as hidden fields.
        "search_statuses": status_values(statuses),
        "older": older,
        "newest": list_url(statuses, search) if before is not None else None,
        "self_url": request.path_qs,
    }
    return await render(request, "incidents.html", context)


# One incident.


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def annotation_view(name: str, value: Any) -> dict[str, Any]:
    """Return an annotation as shown: its text, and its URL when the whole value is an
    http(s) URL (anything else, `javascript:` included, is text)."""
    text = _text(value)
    return {"name": name, "text": text, "url": web_url(text.strip())}


def _listed(value: Any) -> list[Any] | None:
    """Return the JSON list an Events v2 `links` or `images` annotation holds, or None
    (not JSON: cut at its size cap, or sent so by another source)."""
    try:
        listed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return listed if isinstance(listed, list) else None


def event_links(annotations: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the `links` and `images` an Events v2 trigger carried (kept as JSON in its
    annotations), each `{"text", "url", "target"}`; `url` is None unless http(s)."""
    found = []
    for key in EVENT_LINKS:
        for item in _listed(annotations.get(key)) or []:
            if not isinstance(item, dict):
                continue
            target = _text(item.get("href") or item.get("src") or "")
            text = _text(item.get("text") or item.get("alt") or target or key)
            found.append({"text": text, "url": web_url(target), "target": target})
    return found


def context_links(context: AlertContext) -> list[dict[str, Any]]:
    """Return an alert's or a change event's links and images as shown, each `{"text",
    "url", "target"}` (`url` None unless http(s)): an image is a link to the picture (the
    page's policy loads no picture from elsewhere), and to its href when it has one."""
    found = [
        {"text": link["text"] or link["href"], "url": web_url(link["href"]), "target": link["href"]}
        for link in context.links
    ]
    for image in context.images:
        name = image["alt"] or "image"
        found.append(
            {"text": f"Image: {name}", "url": web_url(image["src"]), "target": image["src"]}
        )
        if image["href"]:
            found.append({"text": name, "url": web_url(image["href"]), "target": image["href"]})
    return found


def details_text(details: Any) -> str | None:
    """Return custom_details as shown: text as it is, any other JSON indented."""
    if details is None:
        return None
    if isinstance(details, str):
        return details
    return json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False)


def alert_view(row: Any) -> dict[str, Any]:
    """Return an alert as shown: labels, annotations, details and links, its source as a
    link when http(s)."""
    annotations = dict(row.annotations or {})
    context = stored_context(row.custom_details, row.links, row.images)
    # Links and images read as links are not shown again as JSON text.
    shown = {k: v for k, v in annotations.items() if k not in EVENT_LINKS or _listed(v) is None}
    return {
        "fingerprint": row.fingerprint,
        "status": row.status,
        "starts_at": row.starts_at,
        "ends_at": row.ends_at,
        "labels": sorted((k, _text(v)) for k, v in (row.labels or {}).items()),
        "annotations": [annotation_view(k, v) for k, v in sorted(shown.items())],
        "details": details_text(context.custom_details),
        "links": context_links(context) + event_links(annotations),
        "source": row.generator_url,
        "source_url": web_url(row.generator_url),
    }


def change_view(row: Any) -> dict[str, Any]:
    """Return a change event as shown: its summary, source, times, details and links."""
    context = stored_context(row.custom_details, row.links, row.images)
    return {
        "summary": row.summary,
        "source": row.source,
        "timestamp": row.timestamp,
        "received_at": row.received_at,
        "details": details_text(context.custom_details),
        "links": context_links(context),
    }


def event_view(row: Any) -> dict[str, Any]:
    """Return a timeline entry in words: what happened, who did it, its note's text or
    its details as name and value."""
    detail = dict(row.detail or {})
    note = _text(detail.pop("text", "")) if row.type == "incident.note" else None
    return {
        "at": row.at,
        "what": EVENT_WORDS.get(row.type, row.type),
        "type": row.type,
        "actor": row.actor,
        "note": note,
        "facts": [(k, _text(v)) for k, v in sorted(detail.items())],
    }


def offered_actions(status: str, has_policy: bool) -> frozenset[str]:
    """Return the actions worth a button for an incident in `status` (the handlers still
    refuse the others, as the service decides)."""
    if status == RESOLVED:
        return frozenset({"notes"})
    offered = {"resolve", "snooze", "reassign", "notes"}
    if status == TRIGGERED:
        offered |= {"acknowledge", "responders"}
    if status == ACKNOWLEDGED:
        offered.add("unacknowledge")
    if has_policy:
        offered.add("escalate")
    return frozenset(offered)


def reassign_choices(directory: Directory) -> list[tuple[str, str]]:
    """Return the `to` values of the reassign form with their labels: policies, then
    single users."""
    policies = [(f"{actions.POLICY_TARGET}{name}", name) for name in sorted(directory.policies)]
    users = [(f"{USER_POLICY}{name}", f"{name} alone") for name in sorted(directory.users)]
    return policies + users


@page
async def incident_page(request: web.Request, _user: User) -> web.StreamResponse:
    incident_id = id_param(request.match_info["id"], "id")
    runtime = request.app[RUNTIME]
    row, alerts, events = await runtime.incidents.details(incident_id)
    sent = await runtime.notifier.list_notifications((), incident_id, PAGES_SHOWN)
    changes = await runtime.ingest.changes_before(row.integration, row.created_at)
    directory = runtime.incidents.directory()
    policy = policy_named(directory, row.policy)
    context = {
        "incident": row,
        "labels": sorted((k, _text(v)) for k, v in (row.labels or {}).items()),
        "external_url": web_url(row.external_url),
        "alerts": [alert_view(a) for a in alerts],
        "timeline": [event_view(e) for e in events],
        "changes": [change_view(c) for c in changes],
        "pages": list(reversed(sent)),  # oldest first, as the timeline
        "pages_cut": len(sent) == PAGES_SHOWN,
        "offered": offered_actions(row.status, policy is not None),
        "levels": list(range(1, len(policy.levels) + 1)) if policy else [],
        "reassign_choices": reassign_choices(directory),
        "users": sorted(directory.users),
        "snooze_choices": SNOOZE_CHOICES,
    }
    return await render(request, "incident.html", context)


# The actions: each reads its form with the API's parser and calls the API's service method.

Act = Callable[[Incidents, int, str, Mapping[str, str], datetime], Awaitable[object]]


def level_field(value: str | None) -> int | None:
    """Return the `level` of the escalate form (empty: the next level); raises
    InvalidInput naming `level`."""
    if not value:
        return None
    return actions.level_param(id_param(value, "level"))


ACTIONS: dict[str, Act] = {
    "acknowledge": lambda s, i, actor, form, now: s.acknowledge(i, actor, now),
    "resolve": lambda s, i, actor, form, now: s.resolve(i, actor, now),
    "unacknowledge": lambda s, i, actor, form, now: s.unacknowledge(i, actor, now),
    "snooze": lambda s, i, actor, form, now: s.snooze(
        i, actor, wakes.snooze_duration(form.get("duration")), now
    ),
    "escalate": lambda s, i, actor, form, now: s.escalate(
        i, actor, level_field(form.get("level")), now
    ),
    "reassign": lambda s, i, actor, form, now: s.reassign(
        i, actor, actions.reassign_target(form.get("to"), s.directory()), now
    ),
    "responders": lambda s, i, actor, form, now: s.add_responder(
        i, actor, actions.user_param(form.get("user"), s.directory()), now
    ),
    "notes": lambda s, i, actor, form, now: s.add_note(
        i, actor, actions.note_text(form.get("text")), now
    ),
}


def action_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Return the page handler of the action `name` of ACTIONS: it carries the action out
    as the user logged in, then shows the incident again (303)."""
    action = ACTIONS[name]

    @page
    async def act(request: web.Request, user: User) -> web.StreamResponse:
        incident_id = id_param(request.match_info["id"], "id")
        service = request.app[RUNTIME].incidents
        now = request.app[CLOCK]()
        await action(service, incident_id, user.name, form_of(request), now)
        raise see_other(f"/incidents/{incident_id}")

    return act


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/", incident_list)
    app.router.add_get(r"/incidents/{id:\d+}", incident_page)
    for name in ACTIONS:
        app.router.add_post(rf"/incidents/{{id:\d+}}/{name}", action_page(name))
