"""Small builders for test data: Alertmanager payloads, directory files, settings."""

from __future__ import annotations

import json
import pathlib
from datetime import UTC, datetime, timedelta
from typing import Any

DATA = pathlib.Path(__file__).parent.parent / "data"
AM_TOKEN = "am-token-0123456789abcdefghijklmnopqrstuv"
ALICE_TOKEN = "alice-token-0123456789abcdefghijklmnopqrstuv"
BOB_TOKEN = "bob-token-0123456789abcdefghijklmnopqrstuv"
AM_AUTH = {"Authorization": f"Bearer {AM_TOKEN}"}
# The fake clock's start: a Monday in winter (Berlin is UTC+1). The service's timers run on
# its clock, so those of tests that pin it never come due mid-test.
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)

DIRECTORY_YAML = f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - name: alice
    full_name: Alice Example
    time_zone: Europe/Berlin
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: email, to: alice@example.com}}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: bob@example.com}}]}}
policies:
  - name: default
    repeat: 1
    levels:
      - {{notify: ["user:alice"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 10m}}
routes:
  - {{match: ['severity="critical"'], policy: default}}
  - {{policy: default}}
"""


def load_payload(name: str) -> dict[str, Any]:
    """Return a payload captured from a real Alertmanager (tests/data/NAME.json)."""
    return json.loads((DATA / f"{name}.json").read_text())


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_alert(
    instance: str,
    *,
    status: str = "firing",
    alertname: str = "DiskFull",
    starts_at: datetime = T0,
    severity: str = "critical",
    fingerprint: str | None = None,
) -> dict[str, Any]:
    """Return one alert as Alertmanager puts it in a webhook."""
    return {
        "status": status,
        "labels": {"alertname": alertname, "instance": instance, "severity": severity},
        "annotations": {"summary": f"{alertname} on {instance}"},
        # Alertmanager sends nanoseconds; the last three digits are dropped on the way in.
        "startsAt": f"{starts_at:%Y-%m-%dT%H:%M:%S}.{starts_at.microsecond:06d}789Z",
        "endsAt": rfc3339(starts_at + timedelta(minutes=5))
        if status == "resolved"
        else "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={alertname}",
        "fingerprint": fingerprint or f"fp-{alertname}-{instance}",
    }


def make_webhook(
    alerts: list[dict[str, Any]], *, alertname: str = "DiskFull", truncated: int = 0
) -> dict[str, Any]:
    """Return a version 4 webhook body for one group (grouped by alertname)."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": "oncall",
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname, "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": truncated,
    }


def fast_directory(*, levels: tuple[str, ...] = ("2s", "2s"), repeat: int = 1) -> str:
    """Return a directory whose only policy pages alice, then bob, ... with short delays."""
    users = ["alice", "bob", "carol"]
    level_lines = "\n".join(
        f'      - {{notify: ["user:{users[i % 3]}"], escalate_after: {after}}}'
        for i, after in enumerate(levels)
    )
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{{type: email, to: a@example.com}}]}}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: b@example.com}}]}}
  - {{name: carol, contacts: [{{type: email, to: c@example.com}}]}}
policies:
  - name: fast
    repeat: {repeat}
    levels:
{level_lines}
routes:
  - {{policy: fast}}
"""
