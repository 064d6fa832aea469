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
(oncall.ingest.alertmanager). Each alert's `dashboardURL`, `panelURL`, `silenceURL` and
`imageURL` (when not empty), `values` and `valueString` are kept as its annotations under
the names below, so every page that shows annotations shows them, URLs as links where
they are http(s). One that every alert of the group has alike is also the group's (its
incident's) annotation, as Grafana's own common annotations are those all alerts share.
`title`, `state` and `message` (text Grafana wrote for people, from the same data),
`orgId` and any field Grafana adds later are ignored.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from oncall.errors import InvalidInput
from oncall.ingest.alertmanager import MAX_KEY, MAX_TEXT, AlertGroup, parse_webhook
from oncall.ingest.text import one_line

VERSION = "1"
ALERTMANAGER_VERSION = "4"
DASHBOARD_URL = "grafana_dashboard_url"
PANEL_URL = "grafana_panel_url"
SILENCE_URL = "grafana_silence_url"
IMAGE_URL = "grafana_image_url"
VALUES = "grafana_values"
VALUE_STRING = "grafana_value_string"
# Grafana's field of each alert, the annotation it is kept as, and its name on a page.
URL_FIELDS = (
    ("dashboardURL", DASHBOARD_URL, "Grafana dashboard"),
    ("panelURL", PANEL_URL, "Grafana panel"),
    ("silenceURL", SILENCE_URL, "Silence in Grafana"),
    ("imageURL", IMAGE_URL, "Panel image"),
)
LINK_NAMES = {annotation: name for _, annotation, name in URL_FIELDS}
ANNOTATIONS = (*LINK_NAMES, VALUES, VALUE_STRING)
MAX_VALUES = 100  # one per query and expression of the rule: a handful in practice


def parse_grafana(body: Any) -> AlertGroup:
    """Return the AlertGroup of a decoded Grafana webhook body (version "1"); raises
    InvalidInput naming the field as a JSON path."""
    group = parse_webhook(body, version=VERSION, extras=_grafana_fields)
    shared: dict[str, str] = {}
    for name in ANNOTATIONS:
        values = {alert.annotations.get(name) for alert in group.alerts}
        if len(values) == 1 and (value := values.pop()) is not None:
            shared[name] = value
    if not shared:
        return group
    return dataclasses.replace(group, common_annotations={**group.common_annotations, **shared})


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


def format_values(values: dict[str, float]) -> str:
    """Return a rule's values as a page shows them: `B=44.23943737541908, C=1`, by name."""
    return ", ".join(f"{name}={_number(values[name])}" for name in sorted(values))


def _number(value: float) -> str:
    # As Grafana writes them (Go's shortest form): 1 rather than 1.0.
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _grafana_fields(alert: dict[str, Any], field: str) -> dict[str, str]:
    """Return the annotations an alert's Grafana fields are kept as (empty ones left out)."""
    found: dict[str, str] = {}
    for key, annotation, _ in URL_FIELDS:
        url = _text(alert.get(key), f"{field}.{key}").strip()
        if url:
            found[annotation] = url
    values = _values(alert.get("values"), f"{field}.values")
    if values:
        found[VALUES] = format_values(values)
    value_string = _text(alert.get("valueString"), f"{field}.valueString").strip()
    if value_string:
        found[VALUE_STRING] = value_string
    return found


def _text(value: Any, field: str) -> str:
    """Return an optional one-line string field ("" when absent or null), checked."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput("expected a string", field)
    if len(value) > MAX_TEXT:
        raise InvalidInput("too long", field)
    return one_line(value)


def _values(value: Any, field: str) -> dict[str, float]:
    """Return `values`: an object of numbers by the query or expression they come from
    (Go's `map[string]float64`; null when the rule has none)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("expected an object of numbers", field)
    if len(value) > MAX_VALUES:
        raise InvalidInput(f"at most {MAX_VALUES} values", field)
    found: dict[str, float] = {}
    for key, number in value.items():
        if len(key) > MAX_KEY:
            raise InvalidInput("too long", f"{field}.{key[:40]}")
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidInput("expected a number", f"{field}.{key}")
        try:
            as_float = float(number)
        except OverflowError:  # an integer beyond any float
            raise InvalidInput("out of range", f"{field}.{key}") from None
        if not math.isfinite(as_float):
            raise InvalidInput("expected a finite number", f"{field}.{key}")
        found[one_line(key)] = as_float
    return found
