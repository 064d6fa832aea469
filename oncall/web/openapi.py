"""The OpenAPI 3.1 description of every public endpoint, served at `GET /api/v1/openapi.json`
without a credential (it documents; it holds no secret).

Written as Python rather than kept as a JSON or YAML file: the limits and the lists of
allowed values (statuses, severities, id and page bounds) are the parsers' own constants,
so the description cannot drift from them; the shapes said many times (the error body,
the refusals, the credentials) are written once; and nothing is read from disk at start-up.
`python -m oncall.web.openapi` prints the document.

Left out on purpose: the web UI's pages and `/static` (a login session and its CSRF token
are their credential; they answer HTML to a browser) and the signed links `/a/{token}`
(pages for a person, opened from a notification). The calendar feed URLs are in: calendar
apps are clients. tests/web/test_openapi.py walks the router and fails when a route is
missing here, or a path here is not a route.

Responses are described strictly (`additionalProperties: false` on what this service
writes), so schemathesis (`.ci/schemathesis`) fails when a field is added to an answer but
not here; request bodies accept extra fields where the parser ignores them.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from oncall import __version__
from oncall.incidents.actions import MAX_NOTE_BYTES
from oncall.incidents.lifecycle import STATUSES
from oncall.ingest.alertmanager import MAX_COUNT, MAX_KEY, MAX_TEXT
from oncall.ingest.context import MAX_IMAGES, MAX_LINK_TEXT, MAX_LINKS, MAX_URL
from oncall.ingest.events_v2 import (
    ACTIONS,
    MAX_BODY,
    MAX_DEDUP_KEY,
    MAX_SOURCE,
    MAX_SUMMARY,
    SEVERITIES,
)
from oncall.ingest.grafana import ALERTMANAGER_VERSION, MAX_VALUES
from oncall.ingest.grafana import VERSION as GRAFANA_VERSION
from oncall.maintenance.windows import MAX_ITEMS, MAX_NAME
from oncall.schedules.rotation import DAYS
from oncall.simulate.payload import SOURCES
from oncall.simulate.scenario import DEFAULT_HOURS, MAX_HOURS
from oncall.web.params import MAX_CURSOR, MAX_ID, MAX_LIMIT

PATH = "/api/v1/openapi.json"
JSON = "application/json"
# The notification statuses `GET /api/v1/notifications?status=` takes.
NOTIFICATION_STATUSES = ("pending", "sent", "failed", "cancelled", "folded")

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """Return `schema` or null (JSON Schema 2020-12: no `nullable` keyword in 3.1)."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """Return an object schema of exactly these properties, all required unless told."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
MAYBE_TIME = nullable(TIME)
MAYBE_STRING = nullable(STRING)
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
STRINGS: Schema = {"type": "array", "items": STRING}
STRING_MAP: Schema = {"type": "object", "additionalProperties": STRING}
ANY_OBJECT: Schema = {"type": "object"}

# Credentials, by the security schemes below: any one of a list's entries will do.
Security = list[dict[str, list[str]]]
API: Security = [{"apiToken": []}, {"apiTokenBasic": []}]
INTEGRATION: Security = [{"integrationToken": []}, {"integrationTokenBasic": []}]
METRICS: Security = [{"metricsToken": []}]
OPEN: Security = []


def incident_properties() -> dict[str, Schema]:
    """Return the properties of an incident as oncall.web.views.incident_json writes it."""
    return {
        "id": ID,
        "status": {"enum": list(STATUSES)},
        "title": STRING,
        "severity": STRING,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "integration": {"type": "string", "description": "Where its alerts came in."},
        "dedup_key": {
            "type": "string",
            "description": "The Alertmanager group key, the Events v2 dedup_key, or "
            "the heartbeat's key.",
        },
        "external_url": STRING,
        "created_at": TIME,
        "updated_at": TIME,
        "acknowledged_at": MAYBE_TIME,
        "acknowledged_by": MAYBE_STRING,
        "resolved_at": MAYBE_TIME,
        "resolved_by": MAYBE_STRING,
        "alert_count": INTEGER,
        "firing_count": INTEGER,
        "truncated_alerts": INTEGER,
        "route": MAYBE_STRING,
        "policy": MAYBE_STRING,
        "urgency": {"enum": ["high", "low"]},
        "snoozed_until": {
            **MAYBE_TIME,
            "description": "Acknowledged until then, then triggered again.",
        },
        "ack_timeout_at": MAYBE_TIME,
        "in_maintenance": BOOLEAN,
        "maintenance": {
            **MAYBE_STRING,
            "description": "The key of the maintenance window holding its paging.",
        },
        "next_step": nullable(obj({"level": INTEGER, "repeat": INTEGER, "due_at": TIME})),
    }


def window_properties() -> dict[str, Schema]:
    """Return the properties of a maintenance window as the API shows it."""
    return {
        "id": nullable(ID),
        "source": {"enum": ["directory", "api"]},
        "key": {"type": "string", "examples": ["api:3", "directory:backups"]},
        "name": STRING,
        "start": MAYBE_TIME,
        "end": MAYBE_TIME,
        "every": nullable(
            obj(
                {
                    "days": {"type": "array", "items": {"enum": list(DAYS)}},
                    "from": STRING,
                    "to": STRING,
                    "time_zone": STRING,
                }
            )
        ),
        "match": STRINGS,
        "integrations": STRINGS,
        "created_by": MAYBE_STRING,
        "created_at": MAYBE_TIME,
    }


def new_window() -> Schema:
    """Return the schema of a maintenance window the API adds: one-off (`start` and `end`)
    or weekly (`every`); unknown keys are refused."""
    common = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME,
            "pattern": "^[^\\x00-\\x1f\\x7f]*$",
            "description": "No control characters.",
        },
        "match": {
            "type": "array",
            "items": {"type": "string", "examples": ['team="db"']},
            "maxItems": MAX_ITEMS,
            "description": "Alertmanager matchers the incident's labels must all meet.",
        },
        "integrations": {
            "type": "array",
            "items": STRING,
            "maxItems": MAX_ITEMS,
            "description": "Only incidents from these integrations.",
        },
    }
    one_off = {**common, "start": TIME, "end": {**TIME, "description": "After start."}}
    weekly = {**common, "every": ref("Weekly")}
    return {
        "oneOf": [
            obj(one_off, required=["name", "start", "end"]),
            obj(weekly, required=["name", "every"]),
        ]
    }


def context_properties() -> dict[str, Schema]:
    """Return the properties of an alert's or a change event's context as answered."""
    return {
        "custom_details": {"description": "The sender's details: any JSON; null when none."},
        "links": {"type": "array", "items": ref("Link")},
        "images": {"type": "array", "items": ref("Image")},
    }


def sent_context() -> dict[str, Schema]:
    """Return the Events v2 fields of an event's context (links and images; the details
    are in the payload)."""
    text = {"type": "string", "maxLength": MAX_LINK_TEXT}
    url = {"type": "string", "minLength": 1, "maxLength": MAX_URL}
    return {
        "links": {
            "type": "array",
            "maxItems": MAX_LINKS,
            "items": {
                "type": "object",
                "properties": {"href": url, "text": text},
                "required": ["href"],
            },
        },
        "images": {
            "type": "array",
            "maxItems": MAX_IMAGES,
            "items": {
                "type": "object",
                "properties": {"src": url, "href": {**url, "minLength": 0}, "alt": text},
                "required": ["src"],
            },
        },
    }


def schemas() -> dict[str, Schema]:
    """Return the named schemas of what requests carry and responses answer."""
    return {
        "Error": {
            "type": "object",
            "description": "Every refusal of the API and the ingest endpoints (Events v2 "
            "answers its own 400, 413 and 429 as PagerDuty does).",
            "properties": {
                "error": {"type": "string", "description": "What is wrong, for a person."},
                "field": {
                    "type": "string",
                    "description": "The part of the request at fault: a JSON path into the "
                    "body (`alerts[0].labels`, `$` for the whole), a query or path "
                    "parameter, or a header (`Authorization`).",
                },
            },
            "required": ["error"],
            "additionalProperties": False,
        },
        "Incident": obj(incident_properties()),
        "Simulation": simulation_schema(),
        "SimulateRequest": simulate_request(),
        "IncidentWithPaged": obj(
            {
                **incident_properties(),
                "paged": {
                    "type": "boolean",
                    "description": "False when the user was already added since the incident "
                    "was last triggered again (and is not paged twice).",
                },
            }
        ),
        "IncidentDetail": obj(
            {
                **incident_properties(),
                "alerts": {"type": "array", "items": ref("Alert")},
                "timeline": {"type": "array", "items": ref("TimelineEntry")},
                "changes": {
                    "type": "array",
                    "items": ref("Change"),
                    "description": "Its integration's change events of the 2 hours before "
                    "it opened, newest first.",
                },
            }
        ),
        "Alert": obj(
            {
                "fingerprint": STRING,
                "status": {"enum": ["firing", "resolved"]},
                "labels": STRING_MAP,
                "annotations": STRING_MAP,
                "starts_at": TIME,
                "ends_at": MAYBE_TIME,
                "generator_url": STRING,
                **context_properties(),
            }
        ),
        "Change": obj(
            {
                "summary": STRING,
                "source": STRING,
                "timestamp": {**MAYBE_TIME, "description": "The sender's, when it gave one."},
                "received_at": TIME,
                **context_properties(),
            }
        ),
        "Link": obj({"href": STRING, "text": STRING}),
        "Image": obj({"src": STRING, "href": STRING, "alt": STRING}),
        "TimelineEntry": obj(
            {
                "at": TIME,
                "type": {"type": "string", "examples": ["incident.acknowledged"]},
                "actor": STRING,
                "detail": ANY_OBJECT,
            }
        ),
        "IncidentList": obj(
            {
                "incidents": {"type": "array", "items": ref("Incident")},
                "next_cursor": {
                    **MAYBE_STRING,
                    "description": "`cursor` of the next page; null on the last page.",
                },
            }
        ),
        "Notification": obj(
            {
                "id": ID,
                "incident_id": ID,
                "kind": {"type": "string", "examples": ["trigger", "resolved", "digest"]},
                "level": INTEGER,
                "repeat": INTEGER,
                "user": STRING,
                "contact_index": INTEGER,
                "contact_type": STRING,
                "contact": MAYBE_STRING,
                "status": {"enum": list(NOTIFICATION_STATUSES)},
                "attempts": INTEGER,
                "next_attempt_at": MAYBE_TIME,
                "last_error": MAYBE_STRING,
                "sent_at": MAYBE_TIME,
                "created_at": TIME,
                "attempt_log": {
                    "type": "array",
                    "items": obj(
                        {
                            "at": TIME,
                            "outcome": {"type": "string", "examples": ["delivered", "retry"]},
                            "error": MAYBE_STRING,
                            "duration_ms": INTEGER,
                        }
                    ),
                },
            }
        ),
        "OnCall": obj(
            {
                "at": TIME,
                "schedules": {
                    "type": "object",
                    "description": "Each schedule's user on call (null: nobody).",
                    "additionalProperties": MAYBE_STRING,
                },
                "policies": {
                    "type": "object",
                    "description": "Each policy's levels: their targets and whom they page.",
                    "additionalProperties": {
                        "type": "array",
                        "items": obj({"level": INTEGER, "targets": STRINGS, "on_call": STRINGS}),
                    },
                },
            }
        ),
        "NewOverride": {
            "type": "object",
            "properties": {
                "user": {"type": "string", "description": "Who is on call instead."},
                "start": TIME,
                "end": {**TIME, "description": "After start."},
            },
            "required": ["user", "start", "end"],
        },
        "Override": obj(
            {
                "id": ID,
                "schedule": STRING,
                "user": STRING,
                "start": TIME,
                "end": TIME,
                "created_by": STRING,
                "created_at": TIME,
            }
        ),
        "Shifts": obj(
            {
                "schedule": STRING,
                "time_zone": STRING,
                "start": TIME,
                "end": TIME,
                "shifts": {
                    "type": "array",
                    "items": obj(
                        {
                            "user": STRING,
                            "start": TIME,
                            "end": TIME,
                            "start_local": {**TIME, "description": "In the schedule's zone."},
                            "end_local": TIME,
                        }
                    ),
                },
            }
        ),
        "CalendarFeeds": obj(
            {
                "user": STRING,
                "feeds": {
                    "type": "object",
                    "description": "Each schedule's feed URL; shown this once.",
                    "additionalProperties": {"type": "string", "format": "uri"},
                },
            }
        ),
        "TestPage": obj(
            {
                "results": {
                    "type": "array",
                    "items": obj(
                        {
                            "contact": STRING,
                            "type": STRING,
                            "outcome": {"enum": ["sent", "failed"]},
                            "error": MAYBE_STRING,
                        }
                    ),
                }
            }
        ),
        "Weekly": {
            "type": "object",
            "properties": {
                "days": {
                    "type": "array",
                    "items": {"enum": list(DAYS)},
                    "minItems": 1,
                    "description": "Every day when left out.",
                },
                "from": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                "to": {
                    "type": "string",
                    "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
                    "description": "Not after `from`: the next day.",
                },
                "time_zone": {"type": "string", "examples": ["Europe/Berlin"]},
            },
            "required": ["from", "to", "time_zone"],
            "additionalProperties": False,
        },
        "NewWindow": new_window(),
        "Window": obj(window_properties()),
        "AuditEntry": obj(
            {
                "id": ID,
                "at": TIME,
                "actor": STRING,
                "action": {"type": "string", "examples": ["override.delete"]},
                "subject": STRING,
                "detail": ANY_OBJECT,
            }
        ),
        "AlertmanagerWebhook": alertmanager_webhook(),
        "GrafanaWebhook": grafana_webhook(),
        "EventsV2Event": events_v2_event(),
        "EventsV2Change": events_v2_change(),
        "EventsV2Accepted": obj(
            {"status": {"const": "success"}, "message": STRING, "dedup_key": STRING}
        ),
        "EventsV2ChangeAccepted": obj({"status": {"const": "success"}, "message": STRING}),
        "EventsV2Invalid": obj(
            {"status": {"const": "invalid event"}, "message": STRING, "errors": STRINGS}
        ),
        "EventsV2Refused": obj({"status": STRING, "message": STRING}),
        "Health": obj(
            {
                "status": {"enum": ["ok", "fail"]},
                "checks": {
                    "type": "object",
                    "description": "With the metrics token or an admin's API token only.",
                    "properties": {
                        name: {
                            "type": "object",
                            "properties": {"status": {"enum": ["ok", "fail"]}, "error": STRING},
                            "required": ["status"],
                        }
                        for name in ("database", "redis", "scheduler")
                    }
                    | {
                        "cluster": {
                            "type": "object",
                            "description": "This instance's role and who leads, as its last "
                            "try for the lease saw it.",
                            "properties": {
                                "status": {"enum": ["ok", "fail"]},
                                "error": STRING,
                                "role": {"enum": ["leader", "follower"]},
                                "instance": STRING,
                                "instance_id": STRING,
                                "leader": {"type": ["string", "null"]},
                                "leader_id": {"type": ["string", "null"]},
                                "since": {"type": ["string", "null"], "format": "date-time"},
                                "term": {"type": "integer", "minimum": 0},
                            },
                            "required": ["status", "role", "instance", "leader", "term"],
                        }
                    },
                    "additionalProperties": False,
                },
                "failing": STRINGS,
            },
            required=["status"],
        ),
    }


LABELS: Schema = {
    "type": "object",
    "additionalProperties": {"type": "string", "maxLength": MAX_TEXT},
    "propertyNames": {"maxLength": MAX_KEY},
}


def alert_group(version: str, extras: dict[str, Schema], example: Schema) -> Schema:
    """Return the schema of a webhook body of one alert group as Alertmanager writes it
    (`version`), each alert with `extras`; other fields are ignored."""
    alert = {
        "type": "object",
        "properties": {
            "status": {"enum": ["firing", "resolved"]},
            "labels": {**LABELS, "minProperties": 1},
            "annotations": LABELS,
            "startsAt": TIME,
            "endsAt": {
                **TIME,
                "description": "Go's zero time 0001-01-01T00:00:00Z: not ended.",
            },
            "generatorURL": {"type": "string", "maxLength": MAX_TEXT},
            "fingerprint": {
                "type": "string",
                "maxLength": 128,
                "description": "Computed from the labels when missing.",
            },
            **extras,
        },
        "required": ["status", "labels", "startsAt"],
    }
    return {
        "type": "object",
        "properties": {
            "version": {"const": version},
            "groupKey": {"type": "string", "minLength": 1, "maxLength": 4096},
            "status": {"enum": ["firing", "resolved"]},
            "receiver": {"type": "string", "maxLength": MAX_TEXT},
            "alerts": {"type": "array", "items": alert},
            "groupLabels": LABELS,
            "commonLabels": LABELS,
            "commonAnnotations": LABELS,
            "externalURL": {"type": "string", "maxLength": MAX_TEXT},
            "truncatedAlerts": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
        },
        "required": ["groupKey", "status", "alerts"],
        "examples": [example],
    }


def alertmanager_webhook() -> Schema:
    """Return the schema of Alertmanager's webhook body (version 4)."""
    example = {
        "receiver": "oncall",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "instance": "db1"},
                "annotations": {"summary": "Disk full on db1"},
                "startsAt": "2026-11-28T01:40:05.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": "1b2c3d4e5f607182",
            }
        ],
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "truncatedAlerts": 0,
    }
    return alert_group(ALERTMANAGER_VERSION, {}, example)


def grafana_webhook() -> Schema:
    """Return the schema of Grafana's webhook contact point body (version 1): Alertmanager's
    with links, an image and values of its own on each alert (`title`, `state`, `message`,
    `orgId` are ignored)."""
    url = {"type": "string", "maxLength": MAX_TEXT}
    extras = {
        "dashboardURL": url,
        "panelURL": url,
        "silenceURL": url,
        "imageURL": url,
        "values": nullable(
            {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "propertyNames": {"maxLength": MAX_KEY},
                "maxProperties": MAX_VALUES,
                "description": "The rule's query and expression values, by their names.",
            }
        ),
        "valueString": url,
    }
    example = {
        "receiver": "oncall",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "High memory usage", "team": "blue"},
                "annotations": {"summary": "Memory above 90%"},
                "startsAt": "2026-11-28T09:51:03.157076+02:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://grafana.example.com/alerting/1afz29v7z/edit",
                "fingerprint": "c6eadffa33fcdf37",
                "silenceURL": "https://grafana.example.com/alerting/silence/new",
                "dashboardURL": "https://grafana.example.com/d/mem",
                "panelURL": "https://grafana.example.com/d/mem?viewPanel=2",
                "values": {"B": 92.5, "C": 1},
                "valueString": "[ var='B' labels={} value=92.5 ]",
            }
        ],
        "groupLabels": {},
        "commonLabels": {"alertname": "High memory usage", "team": "blue"},
        "commonAnnotations": {},
        "externalURL": "https://grafana.example.com/",
        "version": "1",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "title": "[FIRING:1]  (blue)",
        "state": "alerting",
        "message": "**Firing**",
    }
    return alert_group(GRAFANA_VERSION, extras, example)


def events_v2_change() -> Schema:
    """Return the schema of a PagerDuty Events API v2 change event; other fields are
    ignored."""
    payload = {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY},
            "source": {"type": "string", "maxLength": MAX_SOURCE},
            "timestamp": TIME,
            "custom_details": {"description": "Any JSON value."},
        },
        "required": ["summary"],
    }
    return {
        "type": "object",
        "properties": {
            "routing_key": {
                "type": "string",
                "minLength": 1,
                "description": "The token of an `events_v2` integration: the credential.",
            },
            "payload": payload,
            **sent_context(),
        },
        "required": ["routing_key", "payload"],
        "examples": [
            {
                "routing_key": "<an events_v2 integration's token>",
                "payload": {
                    "summary": "Deployed api v1.4.2",
                    "source": "ci",
                    "timestamp": "2026-11-28T01:20:00Z",
                },
                "links": [{"href": "https://ci.example.com/builds/42", "text": "Build 42"}],
            }
        ],
    }


def events_v2_event() -> Schema:
    """Return the schema of a PagerDuty Events API v2 event; other fields are ignored."""
    common = {
        "routing_key": {
            "type": "string",
            "minLength": 1,
            "description": "The token of an `events_v2` integration: the credential.",
        },
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": MAX_DEDUP_KEY},
        **sent_context(),
        "client": STRING,
        "client_url": STRING,
    }
    payload = {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY},
            "source": {"type": "string", "minLength": 1},
            "severity": {"enum": list(SEVERITIES)},
            "timestamp": TIME,
            "component": STRING,
            "group": STRING,
            "class": STRING,
            "custom_details": {"description": "Any JSON value."},
        },
        "required": ["summary", "source", "severity"],
    }
    trigger = {
        "type": "object",
        "properties": {**common, "event_action": {"const": "trigger"}, "payload": payload},
        "required": ["routing_key", "event_action", "payload"],
    }
    others = [action for action in ACTIONS if action != "trigger"]
    acknowledge_or_resolve = {
        "type": "object",
        "properties": {**common, "event_action": {"enum": others}},
        "required": ["routing_key", "event_action", "dedup_key"],
    }
    return {
        "oneOf": [trigger, acknowledge_or_resolve],
        "examples": [
            {
                "routing_key": "<an events_v2 integration's token>",
                "event_action": "trigger",
                "dedup_key": "disk-db1",
                "payload": {
                    "summary": "Disk full on db1",
                    "source": "db1",
                    "severity": "critical",
                    "custom_details": {"free": "2%"},
                },
            }
        ],
    }


def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
# The refusals every operation may answer, by status, under components/responses.
REFUSALS = {
    "400": ("BadRequest", error("The request is malformed; `field` says where.")),
    "401": (
        "Unauthorized",
        error(
            "A missing or wrong credential.",
            {"WWW-Authenticate": {"schema": {"type": "string"}}},
        ),
    ),
    "403": ("Forbidden", error("The credential is right, but its role does not allow this.")),
    "404": ("NotFound", error("No such object (or a path that matches no route).")),
    "408": ("RequestTimeout", error("The body did not arrive within `[server] body_timeout`.")),
    "409": ("Conflict", error("Not possible in the object's current state.")),
    "413": ("PayloadTooLarge", error("The body is over the endpoint's limit.")),
    "415": ("UnsupportedMediaType", error("A compressed (Content-Encoding) body.")),
    "429": (
        "TooManyRequests",
        error("Too many wrong credentials from this address recently.", RETRY_AFTER),
    ),
    "503": (
        "Unavailable",
        error("The database did not answer in time; retry.", RETRY_AFTER),
    ),
}
# What reading a body may answer, and what every route behind a credential may.
BODY = ("400", "408", "413", "415")
AUTH = ("401", "429", "503")


def refusals(*statuses: str) -> dict[str, Any]:
    return {
        status: {"$ref": f"#/components/responses/{REFUSALS[status][0]}"} for status in statuses
    }


def answer(description: str, schema: Schema, content_type: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {content_type: {"schema": schema}}}


NO_CONTENT = {"204": {"description": "Done."}}
CALENDAR = answer(
    "An iCalendar feed: shifts from a week ago to 60 days ahead.", STRING, "text/calendar"
)


def parameter(name: str, where: str, schema: Schema, description: str, **more: Any) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
        **more,
    }


INCIDENT_ID = parameter("id", "path", ID, "The incident's id.", example=1)
SCHEDULE = parameter(
    "name", "path", {"type": "string", "minLength": 1}, "A schedule's name.", example="primary"
)
USER = parameter(
    "name", "path", {"type": "string", "minLength": 1}, "A user's name.", example="alice"
)
LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
CURSOR = parameter(
    "cursor",
    "query",
    {"type": "string", "maxLength": MAX_CURSOR},
    "The `next_cursor` of the previous page.",
)


def statuses(allowed: tuple[str, ...]) -> Schema:
    return parameter(
        "status",
        "query",
        {"type": "array", "items": {"enum": list(allowed)}},
        "Only these statuses (comma-separated); all when left out.",
        style="form",
        explode=False,
    )


def limit(default: int) -> Schema:
    return parameter("limit", "query", {**LIMIT, "default": default}, "Rows per page.")


def json_body(schema: Schema, *, required: bool = True, description: str = "") -> Schema:
    body: Schema = {"required": required, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    security: Security,
    responses: dict[str, Any],
    *,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    description: str = "",
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
        "responses": responses,
    }
    if description:
        found["description"] = description
    if parameters:
        found["parameters"] = parameters
    if body is not None:
        found["requestBody"] = body
    return found


def incident_action(
    operation_id: str, summary: str, body: Schema | None = None, status: str = "200"
) -> dict[str, Any]:
    """Return a POST on one incident answering it (404 unknown, 409 resolved)."""
    statuses = (*BODY, *AUTH) if body is not None else ("400", *AUTH)
    return operation(
        operation_id,
        summary,
        "incidents",
        API,
        {
            status: answer("The incident after the action.", ref("Incident")),
            **refusals(*statuses, "404", "409"),
        },
        parameters=[INCIDENT_ID],
        body=body,
    )


def action_body(name: str, schema: Schema, required: bool = True) -> Schema:
    return json_body(
        {"type": "object", "properties": {name: schema}, "required": [name] if required else []},
        required=required,
    )


def events_v2_refusals() -> dict[str, Any]:
    """Return Events v2's refusals: its own as PagerDuty answers them, then the rest."""
    return {
        "400": answer(
            "Invalid, with every problem; a wrong routing key is one.",
            ref("EventsV2Invalid"),
        ),
        "413": answer(f"Over {MAX_BODY} bytes.", ref("EventsV2Refused")),
        "429": {
            **answer(
                "Too many events for this integration, or wrong routing keys from this address.",
                ref("EventsV2Refused"),
            ),
            "headers": RETRY_AFTER,
        },
        **refusals("408", "415", "503"),
    }


def group_webhook(operation_id: str, summary: str, body: Schema, credential: str) -> Schema:
    """Return an operation taking one alert group (Alertmanager's or Grafana's webhook)."""
    return operation(
        operation_id,
        summary,
        "ingest",
        INTEGRATION,
        {
            "200": answer(
                "Applied; the incidents the group touched.",
                obj({"status": {"const": "ok"}, "incidents": {"type": "array", "items": ID}}),
            ),
            **refusals(*BODY, *AUTH),
        },
        body=json_body(body),
        description=f"{credential} The body is at most `[server] max_body_bytes`.",
    )


def ingest_paths() -> dict[str, Any]:
    events = operation(
        "enqueueEventsV2",
        "An Events API v2 event (PagerDuty's)",
        "ingest",
        OPEN,
        {
            "202": answer("Accepted; `dedup_key` is the incident's.", ref("EventsV2Accepted")),
            **events_v2_refusals(),
        },
        body=json_body(ref("EventsV2Event")),
        description="Answers as PagerDuty does, so its clients work unchanged. The "
        "credential is the `routing_key` in the body.",
    )
    return {
        "/api/v1/integrations/alertmanager": {
            "post": group_webhook(
                "postAlertmanagerWebhook",
                "Alertmanager's webhook (Grafana's too)",
                {
                    "anyOf": [
                        ref("AlertmanagerWebhook"),
                        {"allOf": [ref("GrafanaWebhook")], "required": ["version"]},
                    ]
                },
                "The token of an `alertmanager` or a `grafana` integration. A body of "
                'version "1" is Grafana\'s.',
            )
        },
        "/api/v1/integrations/grafana": {
            method: group_webhook(
                f"{method}GrafanaWebhook",
                f"Grafana's webhook contact point ({method.upper()})",
                ref("GrafanaWebhook"),
                "The token of a `grafana` integration. Each alert's dashboardURL, panelURL "
                "and silenceURL become its links, its imageURL an image, its values and "
                "valueString its custom_details (`alerts` of GET /api/v1/incidents/{id}).",
            )
            for method in ("post", "put")
        },
        "/api/v1/heartbeats/{name}": {
            "post": operation(
                "pingHeartbeat",
                "A heartbeat's ping: resets its deadline",
                "ingest",
                INTEGRATION,
                {
                    "200": answer(
                        "The new deadline.",
                        obj({"status": {"const": "ok"}, "deadline": TIME}),
                    ),
                    **refusals("404", "408", "413", *AUTH),
                },
                parameters=[
                    parameter(
                        "name",
                        "path",
                        {"type": "string", "minLength": 1},
                        "The heartbeat integration's name; its token is the credential.",
                        example="backups",
                    )
                ],
                body={
                    "required": False,
                    "description": "Anything (a job's output, say); not kept.",
                    "content": {"text/plain": {"schema": STRING}},
                },
            )
        },
        "/v2/enqueue": {"post": events},
        "/v2/change/enqueue": {
            "post": operation(
                "enqueueChangeEvent",
                "An Events API v2 change event: what changed (a deploy, say)",
                "ingest",
                OPEN,
                {
                    "202": answer("Stored for its integration.", ref("EventsV2ChangeAccepted")),
                    **events_v2_refusals(),
                },
                body=json_body(ref("EventsV2Change")),
                description="Opens nothing and pages nobody: an incident of the same "
                "integration shows the change events of the 2 hours before it opened.",
            )
        },
        "/api/v1/integrations/events": {"post": {**events, "operationId": "enqueueEvents"}},
    }


def incident_paths() -> dict[str, Any]:
    return {
        "/api/v1/incidents": {
            "get": operation(
                "listIncidents",
                "Incidents, newest first, a page at a time",
                "incidents",
                API,
                {
                    "200": answer("A page of incidents.", ref("IncidentList")),
                    **refusals("400", *AUTH),
                },
                parameters=[statuses(STATUSES), limit(50), CURSOR],
            )
        },
        "/api/v1/incidents/{id}": {
            "get": operation(
                "getIncident",
                "An incident with its alerts and timeline",
                "incidents",
                API,
                {
                    "200": answer("The incident.", ref("IncidentDetail")),
                    **refusals("400", "404", *AUTH),
                },
                parameters=[INCIDENT_ID],
            )
        },
        "/api/v1/incidents/{id}/acknowledge": {
            "post": incident_action("acknowledgeIncident", "Acknowledge")
        },
        "/api/v1/incidents/{id}/resolve": {"post": incident_action("resolveIncident", "Resolve")},
        "/api/v1/incidents/{id}/unacknowledge": {
            "post": incident_action(
                "unacknowledgeIncident", "Trigger an acknowledged incident again, at level 1"
            )
        },
        "/api/v1/incidents/{id}/notes": {
            "post": incident_action(
                "addNote",
                "Add a note to the timeline",
                action_body(
                    "text",
                    {
                        "type": "string",
                        "minLength": 1,
                        "description": f"At most {MAX_NOTE_BYTES} bytes of UTF-8.",
                    },
                ),
                status="201",
            )
        },
        "/api/v1/incidents/{id}/escalate": {
            "post": incident_action(
                "escalateIncident",
                "Fire a level now (by default the next one)",
                action_body("level", {"type": "integer", "minimum": 1}, required=False),
            )
        },
        "/api/v1/incidents/{id}/reassign": {
            "post": incident_action(
                "reassignIncident",
                "Hand the incident to another policy or one user, from its level 1",
                action_body(
                    "to",
                    {"type": "string", "examples": ["policy:default", "user:alice"]},
                ),
            )
        },
        "/api/v1/incidents/{id}/responders": {
            "post": operation(
                "addResponder",
                "Page one more user for a triggered incident",
                "incidents",
                API,
                {
                    "200": answer(
                        "The incident, and whether the user was paged.", ref("IncidentWithPaged")
                    ),
                    **refusals(*BODY, *AUTH, "404", "409"),
                },
                parameters=[INCIDENT_ID],
                body=action_body("user", {"type": "string", "examples": ["bob"]}),
            )
        },
        "/api/v1/incidents/{id}/snooze": {
            "post": incident_action(
                "snoozeIncident",
                "Acknowledge until a duration has passed, then trigger again",
                action_body(
                    "duration",
                    {"type": "string", "examples": ["1h", "30m"], "description": "Up to 1w."},
                ),
            )
        },
        "/api/v1/notifications": {
            "get": operation(
                "listNotifications",
                "Notifications newest first, each with its attempts",
                "incidents",
                API,
                {
                    "200": answer(
                        "Notifications.",
                        obj({"notifications": {"type": "array", "items": ref("Notification")}}),
                    ),
                    **refusals("400", *AUTH),
                },
                parameters=[
                    statuses(NOTIFICATION_STATUSES),
                    parameter("incident", "query", ID, "Only this incident's."),
                    limit(100),
                ],
                description="`?status=failed` lists the dead letters.",
            )
        },
    }


def schedule_paths() -> dict[str, Any]:
    override_id = parameter("id", "path", ID, "The override's id.", example=1)
    return {
        "/api/v1/oncall": {
            "get": operation(
                "whoIsOnCall",
                "Who is on call, per schedule and per policy level",
                "schedules",
                API,
                {"200": answer("Who is on call.", ref("OnCall")), **refusals("400", *AUTH)},
                parameters=[parameter("at", "query", TIME, "When; now when left out.")],
            )
        },
        "/api/v1/schedules/{name}/overrides": {
            "get": operation(
                "listOverrides",
                "A schedule's overrides, in creation order",
                "schedules",
                API,
                {
                    "200": answer(
                        "Overrides.",
                        obj({"overrides": {"type": "array", "items": ref("Override")}}),
                    ),
                    **refusals("404", *AUTH),
                },
                parameters=[SCHEDULE],
            ),
            "post": operation(
                "addOverride",
                "Put a user on call instead, from start to end",
                "schedules",
                API,
                {
                    "201": answer("The override.", ref("Override")),
                    **refusals(*BODY, "403", "404", *AUTH),
                },
                parameters=[SCHEDULE],
                body=json_body(ref("NewOverride")),
                description="A responder for themselves; an admin for anyone.",
            ),
        },
        "/api/v1/schedules/{name}/overrides/{id}": {
            "delete": operation(
                "deleteOverride",
                "Delete an override",
                "schedules",
                API,
                {**NO_CONTENT, **refusals("400", "403", "404", *AUTH)},
                parameters=[SCHEDULE, override_id],
                description="A responder their own; an admin anyone's.",
            )
        },
        "/api/v1/schedules/{name}/shifts": {
            "get": operation(
                "getShifts",
                "A schedule's shifts, overrides applied",
                "schedules",
                API,
                {"200": answer("Shifts.", ref("Shifts")), **refusals("400", "404", *AUTH)},
                parameters=[
                    SCHEDULE,
                    parameter("start", "query", TIME, "From; now when left out."),
                    parameter(
                        "end",
                        "query",
                        TIME,
                        "To; a week after start when left out; at most 92 days after it.",
                    ),
                ],
            )
        },
        "/api/v1/schedules/{file}": {
            "get": operation(
                "getFeed",
                "A schedule's iCalendar feed, with an API token",
                "schedules",
                API,
                {"200": CALENDAR, **refusals("404", *AUTH)},
                parameters=[
                    parameter(
                        "file",
                        "path",
                        {"type": "string", "pattern": r"^[^/]+\.ics$"},
                        "The schedule's name and `.ics`.",
                        example="primary.ics",
                    )
                ],
            )
        },
        "/api/v1/users/{name}/calendar-feed": {
            "post": operation(
                "createFeed",
                "Create or rotate a user's calendar feed secret",
                "schedules",
                API,
                {
                    "201": answer("The feed URLs, shown this once.", ref("CalendarFeeds")),
                    **refusals("403", "404", *AUTH),
                },
                parameters=[USER],
                description="The user's own token, or an admin's. Earlier URLs stop working.",
            ),
            "delete": operation(
                "revokeFeed",
                "Revoke a user's calendar feed secret",
                "schedules",
                API,
                {**NO_CONTENT, **refusals("403", "404", *AUTH)},
                parameters=[USER],
            ),
        },
        "/feeds/{user}/{secret}/{file}": {
            "get": operation(
                "getSecretFeed",
                "A schedule's iCalendar feed at a URL carrying a feed secret",
                "schedules",
                OPEN,
                {"200": CALENDAR, **refusals("404", "429", "503")},
                parameters=[
                    parameter("user", "path", {"type": "string", "minLength": 1}, "The user."),
                    parameter(
                        "secret", "path", {"type": "string", "minLength": 1}, "The feed secret."
                    ),
                    parameter(
                        "file",
                        "path",
                        {"type": "string", "pattern": r"^[^/]+\.ics$"},
                        "The schedule's name and `.ics`.",
                    ),
                ],
                description="For calendar apps, which cannot send headers. A wrong secret, "
                "a revoked feed and an unknown user all answer 404, counted as a wrong "
                "credential.",
            )
        },
    }


def other_api_paths() -> dict[str, Any]:
    window_id = parameter("id", "path", {"type": "string"}, "The window's id.", example="1")
    return {
        "/api/v1/users/{name}/test-page": {
            "post": operation(
                "testPage",
                "Send a test message to each of a user's contacts now",
                "users",
                API,
                {
                    "200": answer("Each contact's outcome.", ref("TestPage")),
                    **refusals("403", "404", *AUTH),
                },
                parameters=[USER],
                description="The user's own token, or an admin's. Writes no incident.",
            )
        },
        "/api/v1/maintenance": {
            "get": operation(
                "listWindows",
                "Maintenance windows: the directory file's and the API's",
                "maintenance",
                API,
                {
                    "200": answer(
                        "Windows, each saying whether it is open now.",
                        obj(
                            {
                                "windows": {
                                    "type": "array",
                                    "items": obj({**window_properties(), "open": BOOLEAN}),
                                }
                            }
                        ),
                    ),
                    **refusals(*AUTH),
                },
            ),
            "post": operation(
                "addWindow",
                "Add a maintenance window (admins)",
                "maintenance",
                API,
                {
                    "201": answer("The window.", ref("Window")),
                    **refusals(*BODY, "403", *AUTH),
                },
                body=json_body(ref("NewWindow")),
            ),
        },
        "/api/v1/maintenance/{id}": {
            "delete": operation(
                "deleteWindow",
                "Delete a maintenance window added through the API (admins)",
                "maintenance",
                API,
                {**NO_CONTENT, **refusals("400", "403", "404", *AUTH)},
                parameters=[window_id],
            )
        },
        "/api/v1/audit": {
            "get": operation(
                "listAudit",
                "The audit log, newest first (admins)",
                "audit",
                API,
                {
                    "200": answer(
                        "A page of entries.",
                        obj(
                            {
                                "entries": {"type": "array", "items": ref("AuditEntry")},
                                "next_cursor": MAYBE_STRING,
                            }
                        ),
                    ),
                    **refusals("400", "403", *AUTH),
                },
                parameters=[limit(50), CURSOR],
            )
        },
        PATH: {
            "get": operation(
                "getOpenAPI",
                "This document",
                "ops",
                OPEN,
                {"200": answer("OpenAPI 3.1.", ANY_OBJECT)},
            )
        },
    }


def ops_paths() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "/health": {
            "get": operation(
                "health",
                "Overall health; each dependency's check with a credential",
                "ops",
                [{}, *METRICS, *API],
                {
                    "200": answer("Healthy.", ref("Health")),
                    "503": answer("A check fails.", ref("Health")),
                    **refusals("401", "403", "429"),
                },
                description="Anonymous callers get the status only; the metrics token or an "
                "admin's API token also get the checks. Any other token is refused.",
            )
        },
        "/-/healthy": {
            "get": operation(
                "healthy",
                "Liveness: the process answers",
                "ops",
                OPEN,
                {"200": answer("OK.", text, "text/plain")},
            )
        },
        "/-/ready": {
            "get": operation(
                "ready",
                "Readiness: the database answers, so alerts can be accepted",
                "ops",
                OPEN,
                {
                    "200": answer("OK.", text, "text/plain"),
                    "503": answer("Not ready, and why.", text, "text/plain"),
                },
            )
        },
        "/-/reload": {
            "post": operation(
                "reload",
                "Re-read the directory file (admins)",
                "ops",
                API,
                {
                    "200": answer("The new file is active.", obj({"status": {"const": "ok"}})),
                    "400": error(
                        "The file is invalid (the problems are in the log); the "
                        "previous one stays active."
                    ),
                    **refusals("403", *AUTH),
                },
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics",
                "ops",
                METRICS,
                {
                    "200": answer("The text exposition format.", text, "text/plain"),
                    **refusals("401", "403", "429"),
                },
                description="Needs `[server] metrics_token` (403 without one); or set "
                "`[server] metrics_listen` to serve it on another address without a token.",
            )
        },
    }


def simulation_schema() -> Schema:
    """Return the schema of a simulation's answer (oncall.simulate.answer.Simulation)."""
    count: Schema = {"type": "integer", "minimum": 0}
    target = obj(
        {
            "target": {"type": "string", "examples": ["schedule:primary", "user:bob"]},
            "resolved_to": {**MAYBE_STRING, "description": "The user paged; null: nobody."},
            "via": {
                "type": "string",
                "examples": ["user", "layer:0", "override", "nobody"],
                "description": "Why: a user target, a schedule's layer (its index from 0), an "
                "override, or nobody on call.",
            },
        }
    )
    step = obj(
        {
            "at": TIME,
            "level": {"type": "integer", "minimum": 1},
            "repeat": count,
            "targets": {"type": "array", "items": target},
        }
    )
    page = obj(
        {
            "at": TIME,
            "user": STRING,
            "contact": {
                "type": "string",
                "description": "The contact's name.",
                "examples": ["email"],
            },
            "channel": {
                "type": "string",
                "description": "The contact's type.",
                "examples": ["email"],
            },
            "level": {"type": "integer", "minimum": 1},
            "repeat": count,
            "digest": {"const": True, "description": "A storm's digest (only when it is one)."},
        },
        ["at", "user", "contact", "channel", "level", "repeat"],
    )
    return obj(
        {
            "route": obj(
                {
                    "index": count,
                    "matchers": STRINGS,
                    "skipped": {
                        "type": "array",
                        "description": "Each earlier route, with the matcher that refused.",
                        "items": obj({"index": count, "failed": STRING}),
                    },
                }
            ),
            "policy": STRING,
            "urgency": {"enum": ["high", "low"]},
            "maintenance": nullable(
                obj(
                    {
                        "window": STRING,
                        "until": {
                            **MAYBE_TIME,
                            "description": "When it lets go (null: not within a year).",
                        },
                    }
                )
            ),
            "steps": {"type": "array", "items": step},
            "pages": {"type": "array", "items": page},
        }
    )


def simulate_request() -> Schema:
    """Return the schema of `POST /api/v1/simulate`'s body (oncall.simulate.service)."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "critical"},
        "annotations": {"summary": "Disk full on db1"},
        "startsAt": "2027-03-28T00:30:00Z",
    }
    webhook = {
        "version": ALERTMANAGER_VERSION,
        "status": "firing",
        "groupKey": '{}:{alertname="DiskFull"}',
        "alerts": [alert],
        "commonLabels": alert["labels"],
    }
    event = {
        "routing_key": "the-integration-s-routing-key",
        "event_action": "trigger",
        "payload": {"summary": "Disk full on db1", "source": "db1", "severity": "warning"},
    }
    return {
        "type": "object",
        "properties": {
            "source": {"enum": list(SOURCES)},
            "payload": {
                "type": "object",
                "description": "The body the integration would receive: an Alertmanager or "
                "Grafana webhook, or an Events v2 event (its routing_key is not looked at). "
                "It is parsed as the integration parses it.",
            },
            "at": {**TIME, "description": "When it fires; an ISO 8601 time with its offset."},
            "hours": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_HOURS,
                "default": DEFAULT_HOURS,
                "description": "The span to simulate.",
            },
            "acknowledge_after": {
                "type": "string",
                "examples": ["10m"],
                "description": "Someone acknowledges this long after it opens (a duration "
                f"above 0 and up to {MAX_HOURS:g}h); by default nobody does.",
            },
            "integration": {
                "type": "string",
                "examples": ["prometheus"],
                "description": "The integration that receives it; by default the first of "
                "the source's type.",
            },
        },
        "required": ["source", "payload", "at"],
        "additionalProperties": False,
        "examples": [
            {
                "source": "alertmanager",
                "payload": webhook,
                "at": "2027-03-28T01:30:00+01:00",
                "hours": 2,
                "acknowledge_after": "20m",
            },
            {"source": "events_v2", "payload": event, "at": "2027-03-28T01:30:00+01:00"},
        ],
    }


def simulate_paths() -> dict[str, Any]:
    return {
        "/api/v1/simulate": {
            "post": operation(
                "simulate",
                "Who would be paged, when and how, if this alert fired at this moment",
                "simulate",
                API,
                {
                    "200": answer(
                        "The route, policy, urgency, maintenance, and every step and page "
                        "within the span (its end included), times in UTC.",
                        ref("Simulation"),
                    ),
                    **refusals(*BODY, *AUTH),
                },
                body=json_body(ref("SimulateRequest")),
                description="Any user's API token. Computed with the engine's own decisions "
                "on the directory and the database's overrides, maintenance windows and "
                "recent incidents; it writes nothing and pages nobody. A payload the "
                "integration would refuse, or one that opens no incident, is a 400 naming "
                "`payload.<field>`.",
            )
        }
    }


@functools.cache
def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document (built once)."""
    paths = {**ingest_paths(), **incident_paths(), **schedule_paths()}
    paths |= other_api_paths() | simulate_paths() | ops_paths()
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "oncall",
            "version": __version__,
            "summary": "Alert ingestion, incidents, escalation and schedules.",
            "description": "Every GET also answers HEAD. Times are RFC 3339; answers give "
            'them in UTC with `Z`. Refusals are `{"error": ..., "field": ...}` '
            "(`field` when one part of the request is at fault), except Events v2's, "
            "which answer as PagerDuty does. 503 (with Retry-After) means the database "
            'did not answer in time; an unexpected failure would answer 500 `{"error": '
            '"internal error"}`, which no operation lists: none is expected.',
        },
        "tags": [
            {"name": "ingest", "description": "Where alerts come in."},
            {"name": "incidents", "description": "Incidents and what responders do."},
            {"name": "schedules", "description": "Who is on call, overrides, feeds."},
            {"name": "users", "description": "Checking a user's contacts."},
            {"name": "maintenance", "description": "Windows that hold paging."},
            {"name": "simulate", "description": "What an alert would page, before it fires."},
            {"name": "audit", "description": "Who changed what."},
            {"name": "ops", "description": "Probes, metrics, reload, this document."},
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas(),
            "responses": dict(REFUSALS.values()),
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user's API token (`api_token` in the directory file).",
                },
                "apiTokenBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "HTTP Basic with a user's API token as the password (any "
                    "user name).",
                },
                "integrationToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token of the integration (`integrations[].token`) "
                    "of the type the endpoint takes.",
                },
                "integrationTokenBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "HTTP Basic with the integration's token as the password.",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`[server] metrics_token` (also as the Basic password).",
                },
            },
        },
    }


@functools.cache
def encoded() -> bytes:
    return json.dumps(document(), separators=(",", ":")).encode()


async def serve(_request: web.Request) -> web.Response:
    return web.Response(body=encoded(), content_type=JSON)


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, serve)


if __name__ == "__main__":
    print(json.dumps(document(), indent=2))
