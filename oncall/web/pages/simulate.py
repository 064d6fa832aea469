"""`/simulate`: "if this alert fired at this moment, who would be paged, on what, and
when?" A form (a payload, pasted or one of the samples, its source, a local time in the
viewer's zone, hours, an acknowledgement after some time), and its answer: the route,
policy, urgency and maintenance, the steps and pages as tables and as a timeline drawn on
the server (oncall.simulate.picture).

The answer is the simulator's (`Simulator.run`, the API's `POST /api/v1/simulate`); the
form only builds the body the API takes. A simulation writes nothing and pages nobody.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from oncall.directory.model import User
from oncall.durations import parse_duration
from oncall.errors import InvalidInput
from oncall.simulate import picture
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.pages.base import form_of, page, render
from oncall.web.pages.oncall import people
from oncall.web.pages.schedules import read_local

LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # an <input type="datetime-local"> value
SOURCES = {
    "alertmanager": "Alertmanager webhook",
    "events_v2": "Events API v2 event",
    "grafana": "Grafana webhook",
}
FIELDS = ("payload", "source", "at", "hours", "acknowledge_after")
DEFAULT_HOURS = "2"
MAX_HOURS_TEXT = 16  # characters: a number of hours, with room for a fraction

# One real-looking body per source, as the integration would receive it.
SAMPLES: dict[str, dict[str, Any]] = {
    "alertmanager": {
        "receiver": "oncall",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "DiskFull",
                    "instance": "db-1.prod",
                    "severity": "critical",
                    "team": "db",
                },
                "annotations": {"summary": "/var on db-1.prod is 97 % full"},
                "startsAt": "2026-11-28T01:31:27.358Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=disk",
                "fingerprint": "5f3c1e0a9b7d2c41",
            }
        ],
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {
            "alertname": "DiskFull",
            "instance": "db-1.prod",
            "severity": "critical",
            "team": "db",
        },
        "commonAnnotations": {"summary": "/var on db-1.prod is 97 % full"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
    },
    "events_v2": {
        "routing_key": "the integration's token",
        "event_action": "trigger",
        "dedup_key": "api-5xx",
        "payload": {
            "summary": "5xx rate on api-1.prod above 5 %",
            "source": "api-1.prod",
            "severity": "error",
            "component": "api",
            "group": "web",
            "class": "errors",
        },
    },
}


def sample_text(name: str) -> str:
    """Return sample `name`'s body as the textarea shows it; raises InvalidInput naming
    `sample` for a name there is no sample of."""
    if name not in SAMPLES:
        raise InvalidInput(f"no sample is called that: pick one of {', '.join(SAMPLES)}", "sample")
    return json.dumps(SAMPLES[name], indent=2)


def form_field(field: str | None) -> str | None:
    """Return the form's field an error of the simulator's names (`payload.alerts[0]`:
    payload), or None for an error of the whole form."""
    if not field or field == "$":
        return None
    head = field.split(".", 1)[0].split("[", 1)[0]
    if head == "integration":  # the integration of the source's type it would arrive at
        return "source"
    return head if head in FIELDS else None


def body_of(form: Mapping[str, str], zone: ZoneInfo) -> dict[str, Any]:
    """Return the API's body the form stands for (the shape `POST /api/v1/simulate`
    takes); raises InvalidInput naming the form's field for what is not even that."""
    text = form.get("payload", "").strip()
    if not text:
        raise InvalidInput("paste a payload or pick a sample", "payload")
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"not JSON: {error}", "payload") from None
    if not isinstance(payload, dict):
        raise InvalidInput("expected a JSON object, as the integration receives", "payload")
    source = form.get("source", "")
    if source not in SOURCES:
        raise InvalidInput(f"expected one of {', '.join(SOURCES)}", "source")
    at = read_local(form.get("at", ""), zone, "at")
    hours_text = form.get("hours", "").strip() or DEFAULT_HOURS
    try:
        hours = float(hours_text[:MAX_HOURS_TEXT])
    except ValueError:
        raise InvalidInput("expected a number of hours such as 2 or 0.5", "hours") from None
    if not math.isfinite(hours):
        raise InvalidInput("expected a number of hours such as 2 or 0.5", "hours")
    body: dict[str, Any] = {
        "source": source,
        "payload": payload,
        "at": at.isoformat(),
        "hours": hours,
    }
    after = form.get("acknowledge_after", "").strip()
    if after:
        try:
            parse_duration(after)
        except ValueError:
            raise InvalidInput(
                "expected a duration such as 10m or 1h30m", "acknowledge_after"
            ) from None
        body["acknowledge_after"] = after
    return body


def via_words(via: str) -> str:
    """Return how a schedule's target resolved, in the schedule page's words (`layer:0`
    is its "layer 1"), or "" for a user named by the level itself."""
    kind, _, index = via.partition(":")
    if kind == "layer" and index.isdigit():
        return f"on call in layer {int(index) + 1}"
    return {"user": "", "override": "on call by an override", "nobody": ""}.get(via, via)


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def shown_answer(answer: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Return the simulator's answer as the template shows it: times as instants, users
    with the names the pages show."""
    maintenance = answer.get("maintenance")
    steps = [
        {
            **step,
            "at": _instant(step["at"]),
            "targets": [
                {
                    **t,
                    "name": names.get(t["resolved_to"], t["resolved_to"])
                    if t.get("resolved_to")
                    else None,
                    "via_words": via_words(str(t.get("via", ""))),
                }
                for t in step["targets"]
            ],
        }
        for step in answer["steps"]
    ]
    pages = [
        {
            **p,
            "at": _instant(p["at"]),
            "name": names.get(p["user"], p["user"]),
            "digest": bool(p.get("digest")),
        }
        for p in answer["pages"]
    ]
    route = answer.get("route")
    return {
        "route": None
        if route is None
        else {
            "index": route["index"],
            "name": route.get("name"),
            "matchers": list(route.get("matchers", [])),
            "skipped": list(route.get("skipped", [])),
        },
        "policy": answer["policy"],
        "urgency": answer["urgency"],
        "maintenance": None
        if maintenance is None
        else {"window": maintenance["window"], "until": _instant(maintenance.get("until"))},
        "steps": steps,
        "pages": pages,
    }


def timeline(
    body: Mapping[str, Any], shown: Mapping[str, Any], zone: str, names: Mapping[str, str]
) -> picture.Timeline:
    """Return the picture of an answer `shown` to `body`, with ticks in `zone`."""
    start = datetime.fromisoformat(body["at"])
    after = body.get("acknowledge_after")
    acknowledged = None if after is None else start + parse_duration(after)
    held: Mapping[str, Any] | None = shown["maintenance"]
    return picture.draw(
        start,
        float(body["hours"]),
        zone,
        [picture.StepAt(s["at"], s["level"], s["repeat"]) for s in shown["steps"]],
        [
            picture.PageAt(
                p["at"],
                p["user"],
                p["contact"],
                p["channel"],
                p["level"],
                p["repeat"],
                bool(p.get("digest")),
            )
            for p in shown["pages"]
        ],
        names=names,
        acknowledged=acknowledged,
        held_until=None if held is None else held["until"],
        held_by=None if held is None else held["window"],
    )


async def _show(
    request: web.Request,
    user: User,
    values: Mapping[str, str],
    *,
    status: int = 200,
    errors: Mapping[str, str] | None = None,
    result: Mapping[str, Any] | None = None,
    drawn: picture.Timeline | None = None,
) -> web.Response:
    context = {
        "values": values,
        "errors": dict(errors or {}),
        "samples": {name: SOURCES[name] for name in SAMPLES},
        "sources": SOURCES,
        "result": result,
        "timeline": drawn,
    }
    return await render(request, "simulate.html", context, status)


def _defaults(request: web.Request, user: User) -> dict[str, str]:
    now = request.app[CLOCK]().astimezone(ZoneInfo(user.time_zone))
    return {
        "payload": "",
        "source": "alertmanager",
        "at": now.strftime(LOCAL_INPUT),
        "hours": DEFAULT_HOURS,
        "acknowledge_after": "",
    }


@page
async def simulate_form(request: web.Request, user: User) -> web.StreamResponse:
    values = _defaults(request, user)
    name = request.query.get("sample")
    if name is None:
        return await _show(request, user, values)
    try:
        values.update(payload=sample_text(name), source=name)
    except InvalidInput as error:
        return await _show(request, user, values, status=400, errors={"sample": error.message})
    return await _show(request, user, values)


@page
async def simulate(request: web.Request, user: User) -> web.StreamResponse:
    form = form_of(request)
    values = {k: form.get(k, "") for k in FIELDS}
    names = people(request.app[DIRECTORY].current)
    try:
        body = body_of(form, ZoneInfo(user.time_zone))
        answer = await request.app[RUNTIME].simulator.run(body)
        shown = shown_answer(answer, names)
        drawn = timeline(body, shown, user.time_zone, names)
    except InvalidInput as error:
        where = form_field(error.field) or "$"
        return await _show(request, user, values, status=400, errors={where: error.message})
    return await _show(request, user, values, result=shown, drawn=drawn)


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/simulate", simulate_form)
    app.router.add_post("/simulate", simulate)
