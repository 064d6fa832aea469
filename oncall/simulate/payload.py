"""A simulated alert as it enters: the payload parsed by the integration's own parser into
the group that would open the incident. Pure.

A payload the integration would refuse is refused here too, naming the field under
`payload` (`payload.alerts[0].labels`, `payload.payload.severity` for Events v2's own
`payload`); so is one that would open no incident (every alert resolved, an Events v2
acknowledge or resolve, only a Watchdog).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from oncall.directory.model import Directory, Integration
from oncall.errors import InvalidInput
from oncall.ingest.alertmanager import AlertGroup
from oncall.ingest.dedup import plan_delivery
from oncall.ingest.events_v2 import InvalidEvent, parse_event, trigger_group
from oncall.ingest.grafana import parse_alert_webhook, parse_grafana
from oncall.ingest.heartbeats import split_watchdog

SOURCES = ("alertmanager", "events_v2", "grafana")
# The integration types each source's endpoint takes (the Alertmanager one takes Grafana's).
ACCEPTED_BY = {
    "alertmanager": ("alertmanager", "grafana"),
    "events_v2": ("events_v2",),
    "grafana": ("grafana",),
}
SIMULATED_KEY = "simulated"  # the dedup_key of an Events v2 trigger that has none
_QUOTED_FIELD = re.compile(r"'([^']+)'")


def receiving(directory: Directory, source: str, name: str | None) -> Integration:
    """Return the integration that receives the payload: `name`, else the directory's
    first of the source's type. Raises InvalidInput naming `source` or `integration`."""
    if source not in SOURCES:
        raise InvalidInput(f"expected one of {', '.join(SOURCES)}", "source")
    accepted = ACCEPTED_BY[source]
    if name is not None:
        found = directory.integrations.get(name)
        if found is None or found.type not in accepted:
            raise InvalidInput(
                f"expected the name of an integration of type {' or '.join(accepted)}",
                "integration",
            )
        return found
    for integration in directory.integrations.values():
        if integration.type == source:
            return integration
    raise InvalidInput(f"the directory has no integration of type {source}", "source")


def opening_group(
    directory: Directory,
    source: str,
    payload: Mapping[str, Any],
    integration: Integration,
    at: datetime,
) -> AlertGroup:
    """Return the group of alerts that opens the incident when `integration` receives
    `payload` at `at` and has no open incident of it. Raises InvalidInput naming the
    field under `payload`."""
    body = dict(payload) if isinstance(payload, Mapping) else payload
    if source == "events_v2":
        group = _event_group(body, at)
    else:
        parse: Callable[[Any], AlertGroup] = (
            parse_grafana if source == "grafana" else parse_alert_webhook
        )
        try:
            group = parse(body)
        except InvalidInput as error:
            field = error.field or "$"
            raise InvalidInput(error.message, _under_payload(field)) from None
        # As the service takes it: the Watchdog alert pings heartbeats, it is no incident.
        if directory.heartbeats_fed_by(integration.name):
            group = split_watchdog(group)[1]
    if not any(change.incident_id is None for change in plan_delivery(group, None, (), {})):
        raise InvalidInput(
            "no alert of this payload is firing: it opens no incident", "payload.alerts"
        )
    return group


def _event_group(body: Any, at: datetime) -> AlertGroup:
    try:
        event = parse_event(body)
    except InvalidEvent as error:
        named = _QUOTED_FIELD.search(error.errors[0])
        field = _under_payload(named[1]) if named else "payload"
        raise InvalidInput("; ".join(error.errors), field) from None
    if event.action != "trigger":
        raise InvalidInput(
            f"event_action {event.action!r} opens no incident; only a trigger does",
            "payload.event_action",
        )
    if event.dedup_key is None:  # the service gives it one, and answers with it
        event = dataclasses.replace(event, dedup_key=SIMULATED_KEY)
    return trigger_group(event, 0, at)


def _under_payload(field: str) -> str:
    """Return a payload's field as a field of the simulation's body."""
    if field in ("", "$"):
        return "payload"
    return f"payload.{field}" if not field.startswith("[") else f"payload{field}"
