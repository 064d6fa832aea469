"""Grafana's webhook contact point (unified alerting), normalised where it enters. Pure.

Grafana's alerting runs an Alertmanager inside, and its webhook posts that Alertmanager's
body with `"version": "1"`, times in the server's own offset, and fields of its own. The
body as Grafana's documentation shows it (tests/data/grafana_firing.json is all of it):

    {"receiver": "My Super Webhook", "status": "firing", "orgId": 1,
     "alerts": [{"status": "firing",
       "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
       "annotations": {"summary": "This alert was triggered for zone us-1", ...},
       "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
       "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
       "fingerprint": "c6eadffa33fcdf37",
       "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&...",
       "dashboardURL": "", "panelURL": "", "values": {"B": 44.23943737541908, "C": 1}}, ...],
     "groupLabels": {}, "commonLabels": {"team": "blue"}, "commonAnnotations": {},
     "externalURL": "https://play.grafana.org/", "version": "1", "groupKey": "{}:{}",
     "truncatedAlerts": 0, "title": "[FIRING:2]  (blue)", "state": "alerting",
     "message": "**Firing**\\n\\nLabels: ..."}

Everything the Alertmanager parser reads is read and checked as it does
(oncall.ingest.alertmanager). Each alert's own fields are its context (as an Events v2
trigger's: oncall.ingest.context), stored structured and shown by every page: its
`dashboardURL`, `panelURL` and `silenceURL` (when not empty) are its links, by the names
in URL_FIELDS; its `imageURL` an image, linked to the panel; its `values` (numbers by
the query or expression they come from) and `valueString` its details, under Grafana's
names. `title`, `state` and `message` (text Grafana wrote for people, from the same data),
`orgId` and any field Grafana adds later are ignored.
"""

from __future__ import annotations

import math
from typing import Any

from oncall.errors import InvalidInput
from oncall.ingest.alertmanager import MAX_KEY, MAX_TEXT, AlertGroup, parse_webhook
from oncall.ingest.context import NO_CONTEXT, AlertContext, Image, Link
from oncall.ingest.text import one_line

VERSION = "1"
ALERTMANAGER_VERSION = "4"
# Grafana's link fields of an alert and the text of the link each becomes.
URL_FIELDS = (
    ("dashboardURL", "Grafana dashboard"),
    ("panelURL", "Grafana panel"),
    ("silenceURL", "Silence in Grafana"),
)
IMAGE_ALT = "Panel image"
MAX_VALUES = 100  # one per query and expression of the rule: a handful in practice


def parse_grafana(body: Any) -> AlertGroup:
    """Return the AlertGroup of a decoded Grafana webhook body (version "1"); raises
    InvalidInput naming the field as a JSON path."""
    return parse_webhook(body, version=VERSION, context_of=grafana_context)


def parse_alert_webhook(body: Any) -> AlertGroup:
    """Return the AlertGroup of an Alertmanager body (version "4", or none) or a Grafana
    one (version "1"), as the Alertmanager endpoint takes both."""
    version = body.get("version") if isinstance(body, dict) else None
    if version == VERSION:
        return parse_grafana(body)
    if version is not None and version != ALERTMANAGER_VERSION:
        raise InvalidInput(
            f'unsupported webhook version {version!r}; expected "4" (Alertmanager) '
            f'or "1" (Grafana)',
            "version",
        )
    return parse_webhook(body)


def grafana_context(alert: dict[str, Any], field: str) -> AlertContext:
    """Return the context of one alert of Grafana's (empty fields left out)."""
    urls = {key: _text(alert.get(key), f"{field}.{key}") for key, _ in URL_FIELDS}
    links: tuple[Link, ...] = tuple(
        {"href": urls[key], "text": text} for key, text in URL_FIELDS if urls[key]
    )
    images: tuple[Image, ...] = ()
    image = _text(alert.get("imageURL"), f"{field}.imageURL")
    if image:
        href = urls["panelURL"] or urls["dashboardURL"]
        images = ({"src": image, "href": href, "alt": IMAGE_ALT},)
    details: dict[str, Any] = {}
    values = _values(alert.get("values"), f"{field}.values")
    if values:
        details["values"] = values
    value_string = _text(alert.get("valueString"), f"{field}.valueString")
    if value_string:
        details["valueString"] = value_string
    if not (links or images or details):
        return NO_CONTEXT
    return AlertContext(details or None, links, images)


def _text(value: Any, field: str) -> str:
    """Return an optional one-line string field ("" when absent or null), checked."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("expected a string", field)
    if len(value) > MAX_TEXT:
        raise InvalidInput("too long", field)
    return one_line(value).strip()


def _values(value: Any, field: str) -> dict[str, int | float]:
    """Return `values`: an object of numbers by the query or expression they come from
    (Go's `map[string]float64`; null when the rule has none)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("expected an object of numbers", field)
    if len(value) > MAX_VALUES:
        raise InvalidInput(f"at most {MAX_VALUES} values", field)
    found: dict[str, int | float] = {}
    for key, number in value.items():
        if len(key) > MAX_KEY:
            raise InvalidInput("too long", f"{field}.{key[:40]}")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidInput("expected a number", f"{field}.{key}")
        try:
            finite = math.isfinite(number)
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            raise InvalidInput("expected a finite number", f"{field}.{key}")
        found[one_line(key)] = number
    return found
