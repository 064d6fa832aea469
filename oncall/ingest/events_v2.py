"""PagerDuty Events API v2 bodies, normalised where they enter. Pure.

    {"routing_key": "...", "event_action": "trigger", "dedup_key": "disk-db1",
     "payload": {"summary": "Disk full on db1", "source": "db1", "severity": "critical",
                 "timestamp": "2026-11-28T01:30:50.340Z", "component": "postgres",
                 "group": "db", "class": "disk", "custom_details": {"free": "2%"}},
     "links": [{"href": "https://...", "text": "Graph"}], "images": [],
     "client": "Alertmanager", "client_url": "http://alertmanager:9093"}

Errors are collected, as PagerDuty reports them: every problem in one 400 answer. Every
string kept is made storable (oncall.ingest.text: NUL and lone surrogates become U+FFFD)
and its control characters normalised: the summary keeps its newlines and tabs (it is an
annotation; the title is its first line), every other field is one line. The severity is
normalised before it is checked, so "critical\n" is critical.

A trigger's `payload.custom_details`, `links` and `images` are its alert's context
(oncall.ingest.context), stored structured beside its labels and annotations.

A change event (`POST /v2/change/enqueue`) says what changed (a deploy, a config push);
it opens nothing and is shown with the incidents its integration opens soon after:

    {"routing_key": "...", "payload": {"summary": "Deployed api v2.3.1",
     "timestamp": "2026-11-28T01:10:00.000+0000", "source": "ci",
     "custom_details": {"build": 812}},
     "links": [{"href": "https://ci.example.com/builds/812", "text": "Build 812"}]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from oncall.ingest.alertmanager import AlertGroup, IncomingAlert, fallback_fingerprint
from oncall.ingest.context import (
    NO_CONTEXT,
    AlertContext,
    parse_details,
    parse_images,
    parse_links,
)
from oncall.ingest.text import multiline, one_line, storable

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_SOURCE = 1024  # a change event's source (a trigger's is a label, bounded as labels are)
MAX_BODY = 512 * 1024


class InvalidEvent(Exception):
    """The event is invalid; `errors` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Event:
    routing_key: str
    action: str
    dedup_key: str | None
    summary: str = ""
    source: str = ""
    severity: str = ""
    timestamp: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)  # routing labels
    annotations: dict[str, str] = field(default_factory=dict)
    client_url: str = ""
    context: AlertContext = NO_CONTEXT  # custom_details, links and images


@dataclass(frozen=True)
class ChangeEvent:
    """A change event: what changed, where, when the sender says it did, its context."""

    routing_key: str
    summary: str
    source: str = ""
    timestamp: datetime | None = None  # the sender's, in UTC
    context: AlertContext = NO_CONTEXT


def _optional_string(
    data: dict[str, Any],
    key: str,
    errors: list[str],
    where: str,
    clean: Callable[[str], str] = one_line,
) -> str:
    """Return a string field cleaned (one line unless told), "" when absent; a wrong type
    is added to `errors`."""
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(f"'{where}{key}' must be a string")
        return ""
    return clean(value)


def _timestamp(payload: dict[str, Any], errors: list[str]) -> datetime | None:
    """Return `payload.timestamp` in UTC (None when absent); a bad one is added to
    `errors`. PagerDuty's own examples write the offset without a colon (+0000)."""
    value = payload.get("timestamp")
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        errors.append("'payload.timestamp' must be an ISO 8601 time with an offset")
        return None


def parse_event(body: Any) -> Event:
    """Return the Event of a decoded body; raises InvalidEvent listing every problem."""
    if not isinstance(body, dict):
        raise InvalidEvent(["Event object is not a JSON object"])
    errors: list[str] = []
    routing_key = body.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key:
        errors.append("'routing_key' is missing or blank")
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and (
        not isinstance(dedup_key, str) or not dedup_key or len(dedup_key) > MAX_DEDUP_KEY
    ):
        errors.append(
            f"'dedup_key' must be a non-empty string of at most {MAX_DEDUP_KEY} characters"
        )
        dedup_key = None
    elif dedup_key is not None:
        dedup_key = storable(dedup_key)
    if action in ("acknowledge", "resolve") and body.get("dedup_key") is None:
        errors.append(f"'dedup_key' is required to {action}")
    summary = source = severity = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    timestamp = details = None
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
            payload = {}
        summary = _optional_string(payload, "summary", errors, "payload.", multiline)
        if not summary:
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > MAX_SUMMARY:
            errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
        source = _optional_string(payload, "source", errors, "payload.")
        if not source:
            errors.append("'payload.source' is missing or blank")
        given = payload.get("severity")
        severity = one_line(given).strip() if isinstance(given, str) else ""
        if severity not in SEVERITIES:
            errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
        timestamp = _timestamp(payload, errors)
        for key in ("component", "group", "class"):
            value = _optional_string(payload, key, errors, "payload.")
            if value:
                labels[key] = value
        labels.update(severity=severity, source=source)
        annotations["summary"] = summary
        details = parse_details(payload.get("custom_details"), "payload.custom_details", errors)
    # Checked whatever the action, as before: an acknowledge or a resolve keeps none.
    links = parse_links(body.get("links"), "links", errors)
    images = parse_images(body.get("images"), "images", errors)
    context = AlertContext(details, links, images) if action == "trigger" else NO_CONTEXT
    client = _optional_string(body, "client", errors, "")
    client_url = _optional_string(body, "client_url", errors, "")
    if client:
        annotations["client"] = client
    if errors:
        raise InvalidEvent(errors)
    assert isinstance(routing_key, str) and isinstance(action, str)  # else an error above
    return Event(
        routing_key,
        action,
        dedup_key,
        summary,
        source,
        severity,
        timestamp,
        labels,
        annotations,
        client_url,
        context,
    )


def trigger_group(event: Event, lifecycle: int, now: datetime) -> AlertGroup:
    """Return a trigger as the one-alert group that opens its incident.

    `lifecycle` counts the incidents its dedup_key has had: each lifecycle is its own
    occurrence (fingerprint), whatever the clock says.
    """
    assert event.dedup_key is not None
    alert = IncomingAlert(
        fingerprint=fallback_fingerprint(
            {"dedup_key": event.dedup_key, "lifecycle": str(lifecycle)}
        ),
        status="firing",
        labels=event.labels,
        annotations=event.annotations,
        starts_at=now,
        ends_at=None,
        generator_url=event.client_url,
        context=event.context,
    )
    return AlertGroup(
        group_key=event.dedup_key,
        status="firing",
        receiver="",
        group_labels={},
        common_labels=event.labels,
        common_annotations=event.annotations,
        external_url=event.client_url,
        truncated_alerts=0,
        alerts=(alert,),
    )


def parse_change_event(body: Any) -> ChangeEvent:
    """Return the ChangeEvent of a decoded body; raises InvalidEvent listing every problem."""
    if not isinstance(body, dict):
        raise InvalidEvent(["Event object is not a JSON object"])
    errors: list[str] = []
    routing_key = body.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key:
        errors.append("'routing_key' is missing or blank")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        payload = {}
    summary = _optional_string(payload, "summary", errors, "payload.").strip()
    if not summary:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
    source = _optional_string(payload, "source", errors, "payload.").strip()
    if len(source) > MAX_SOURCE:
        errors.append(f"'payload.source' is longer than {MAX_SOURCE} characters")
    timestamp = _timestamp(payload, errors)
    context = AlertContext(
        parse_details(payload.get("custom_details"), "payload.custom_details", errors),
        parse_links(body.get("links"), "links", errors),
        parse_images(body.get("images"), "images", errors),
    )
    if errors:
        raise InvalidEvent(errors)
    assert isinstance(routing_key, str)  # else an error above
    return ChangeEvent(routing_key, summary, source, timestamp, context)
