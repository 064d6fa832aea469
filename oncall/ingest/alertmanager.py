"""Alertmanager webhook (version 4) payloads, normalised where they enter.

A real payload, as Alertmanager 0.25 sends it (more in tests/data/):

    {"receiver": "oncall", "status": "firing", "alerts": [{"status": "firing",
      "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "critical"},
      "annotations": {"summary": "Disk full on db1"},
      "startsAt": "2026-11-28T01:40:05.123456789Z", "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
      "fingerprint": "1b2c3d4e5f607182"}],
     "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {...},
     "commonAnnotations": {...},
     "externalURL": "http://alertmanager:9093", "version": "4",
     "groupKey": "{}:{alertname=\\"DiskFull\\"}", "truncatedAlerts": 0}

Unknown extra fields are ignored; everything we use is type-checked, and a violation raises
InvalidInput naming the field as a JSON path. Every string kept is made storable
(oncall.ingest.text: NUL and lone surrogates become U+FFFD), so one odd label cannot make
the database refuse the whole group, and its control characters are normalised: labels,
URLs and the receiver on one line (they reach e-mail subjects and headers), annotations
keeping their newlines and tabs. Labels are normalised before a fallback fingerprint is
computed from them, so the same alert always gets the same one.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from oncall.errors import InvalidInput
from oncall.ingest.context import NO_CONTEXT, AlertContext
from oncall.ingest.text import clean_map, multiline, one_line, storable

MAX_TEXT = 64 * 1024  # one label or annotation value
MAX_KEY = 1024
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_COUNT = 2**31 - 1  # the database's integer columns (PostgreSQL's `integer`)
# Reads the context of one alert from a sender's own fields (its decoded object, its JSON
# path): how Grafana's webhook (oncall.ingest.grafana) keeps its links, image and values.
ContextOf = Callable[[dict[str, Any], str], AlertContext]


@dataclass(frozen=True)
class IncomingAlert:
    fingerprint: str
    status: str  # "firing" or "resolved"
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    context: AlertContext = NO_CONTEXT  # details, links and images (Events v2 sends them)


@dataclass(frozen=True)
class AlertGroup:
    group_key: str
    status: str
    receiver: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    truncated_alerts: int
    alerts: tuple[IncomingAlert, ...]

    def title(self) -> str:
        """Return a one-line title: the first line of the common summary, else the alert
        name, else the key; "alert" when that is blank."""
        first = self.alerts[0].labels if self.alerts else {}
        text = (
            self.common_annotations.get("summary")
            or self.common_labels.get("alertname")
            or first.get("alertname")
            or self.group_key
        )
        line = next((line for line in text.splitlines() if line.strip()), "")
        # one_line again: a group built in code (Events v2, heartbeats) or a group key is
        # not normalised like labels, and the title becomes an e-mail subject.
        return one_line(line).strip()[:255] or "alert"

    def severity(self) -> str:
        """Return the group's severity label on one line, lower-cased, or "unknown"."""
        first = self.alerts[0].labels if self.alerts else {}
        given = self.common_labels.get("severity") or first.get("severity") or ""
        return one_line(given).strip().lower()[:32] or "unknown"


def parse_timestamp(value: Any, field: str) -> datetime | None:
    """Return the aware UTC datetime of an RFC 3339 timestamp, or None for Go's zero time.

    Nanosecond fractions are truncated to microseconds. Raises InvalidInput naming `field`.
    """
    if not isinstance(value, str):
        raise InvalidInput("expected an RFC 3339 timestamp string", field)
    try:
        return _parse_text(value)
    except ValueError as error:
        raise InvalidInput(str(error), field) from None


# The alerts of one delivery mostly share their startsAt, and all of them Go's zero endsAt.
@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> datetime | None:
    """Return what `parse_timestamp` returns for a string; raises ValueError saying why."""
    match = _TIMESTAMP.match(value)
    if match is None:
        raise ValueError(f"{value[:40]!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if year == "0001" and month == "01" and day == "01":
        return None  # Go's time.Time{}: "not set"
    try:
        # The pattern vetted the form; the C parser builds it faster than the fallback.
        # It truncates nanoseconds as the fallback does.
        return datetime.fromisoformat(value).astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value[:40]!r} is out of range in UTC") from None
    except ValueError:
        pass  # a form it does not take (a lower-case z), or an impossible date: see below
    offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
    if sign == "-":
        offset = -offset
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=timezone(offset),
        )
    except ValueError as exc:
        raise ValueError(f"{value[:40]!r}: {exc}") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value[:40]!r} is out of range in UTC") from None


def _labels(
    value: Any, field: str, *, required: bool = False, annotations: bool = False
) -> dict[str, str]:
    """Return a label map (`annotations`: an annotation map) checked and normalised."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("expected an object of string values", field)
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidInput("expected a string", f"{field}.{key}")
        if len(key) > MAX_KEY or len(item) > MAX_TEXT:
            raise InvalidInput("too long", f"{field}.{key}")
    return clean_map(value, multiline if annotations else one_line)


def _string(value: Any, field: str, *, default: str | None = None) -> str:
    """Return a one-line string field (a URL, the receiver) checked and normalised."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InvalidInput("expected a string", field)
    if len(value) > MAX_TEXT:
        raise InvalidInput("too long", field)
    return one_line(value)


def fallback_fingerprint(labels: dict[str, str]) -> str:
    """Return a stable 16-hex-digit fingerprint of a label set, for senders that omit one."""
    digest = hashlib.sha256()
    for key in sorted(labels):
        digest.update(f"{key}\xff{labels[key]}\xff".encode())
    return digest.hexdigest()[:16]


def _alert(value: Any, field: str, context_of: ContextOf | None = None) -> IncomingAlert:
    if not isinstance(value, dict):
        raise InvalidInput("expected an object", field)
    status = value.get("status")
    if status not in ("firing", "resolved"):
        raise InvalidInput('expected "firing" or "resolved"', f"{field}.status")
    labels = _labels(value.get("labels"), f"{field}.labels", required=True)
    if not labels:
        raise InvalidInput("an alert needs at least one label", f"{field}.labels")
    starts_at = parse_timestamp(value.get("startsAt"), f"{field}.startsAt")
    if starts_at is None:
        raise InvalidInput("must be set", f"{field}.startsAt")
    ends_at = None
    if value.get("endsAt") is not None:
        ends_at = parse_timestamp(value["endsAt"], f"{field}.endsAt")
    fingerprint = value.get("fingerprint")
    if fingerprint in (None, ""):
        fingerprint = fallback_fingerprint(labels)
    elif not isinstance(fingerprint, str) or len(fingerprint) > 128:
        raise InvalidInput("expected a string of at most 128 characters", f"{field}.fingerprint")
    return IncomingAlert(
        fingerprint=storable(fingerprint),
        status=status,
        labels=labels,
        annotations=_labels(value.get("annotations"), f"{field}.annotations", annotations=True),
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=_string(value.get("generatorURL"), f"{field}.generatorURL", default=""),
        context=NO_CONTEXT if context_of is None else context_of(value, field),
    )


def parse_webhook(
    body: Any, *, version: str = "4", context_of: ContextOf | None = None
) -> AlertGroup:
    """Return the AlertGroup of a decoded webhook body; raises InvalidInput naming the field.

    `version` is the one expected (a body without one is taken as it); `context_of` reads
    each alert's context from a sender's own fields.
    """
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object", "$")
    given = body.get("version")
    if given is not None and given != version:
        raise InvalidInput(
            f'unsupported webhook version {given!r}; expected "{version}"', "version"
        )
    group_key = body.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise InvalidInput("required: a non-empty string", "groupKey")
    if len(group_key) > 4096:
        raise InvalidInput("too long", "groupKey")
    status = body.get("status")
    if status not in ("firing", "resolved"):
        raise InvalidInput('expected "firing" or "resolved"', "status")
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise InvalidInput("required: a list of alerts", "alerts")
    truncated = body.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int):
        raise InvalidInput("expected a non-negative integer", "truncatedAlerts")
    if not 0 <= truncated <= MAX_COUNT:
        raise InvalidInput(f"expected an integer from 0 to {MAX_COUNT}", "truncatedAlerts")
    # Alertmanager never repeats an alert in one payload; if a sender does, the last wins.
    alerts: dict[tuple[str, datetime], IncomingAlert] = {}
    for index, raw in enumerate(raw_alerts):
        alert = _alert(raw, f"alerts[{index}]", context_of)
        alerts[(alert.fingerprint, alert.starts_at)] = alert
    return AlertGroup(
        group_key=storable(group_key),
        status=status,
        receiver=_string(body.get("receiver"), "receiver", default=""),
        group_labels=_labels(body.get("groupLabels"), "groupLabels"),
        common_labels=_labels(body.get("commonLabels"), "commonLabels"),
        common_annotations=_labels(
            body.get("commonAnnotations"), "commonAnnotations", annotations=True
        ),
        external_url=_string(body.get("externalURL"), "externalURL", default=""),
        truncated_alerts=truncated,
        alerts=tuple(alerts.values()),
    )
