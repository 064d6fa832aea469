"""Heartbeats (a dead man's switch): what a missed deadline opens, and Watchdog pings. Pure.

A heartbeat's deadline is a timer like an escalation step: its database row is the truth.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from oncall.clock import isoformat
from oncall.directory.model import Integration
from oncall.ingest.alertmanager import AlertGroup, IncomingAlert

DEDUP_PREFIX = "heartbeat:"
WATCHDOG = "Watchdog"  # the alert Alertmanager's default rules keep firing


def dedup_key(name: str) -> str:
    """Return the dedup key of a heartbeat's incidents."""
    return DEDUP_PREFIX + name


def missed_group(
    heartbeat: Integration, last_ping_at: datetime | None, deadline: datetime, missed: int
) -> AlertGroup:
    """Return the one-alert group a missed deadline opens an incident with; `missed` counts
    the deadlines missed so far, this one included (each is its own occurrence)."""
    labels = {"alertname": "HeartbeatMissed", "heartbeat": heartbeat.name, "severity": "critical"}
    annotations = {"summary": f"No heartbeat from {heartbeat.name} since {isoformat(last_ping_at)}"}
    alert = IncomingAlert(
        fingerprint=f"heartbeat-{heartbeat.name}-{missed}",
        status="firing",
        labels=labels,
        annotations=annotations,
        starts_at=deadline,
        ends_at=None,
        generator_url="",
    )
    return AlertGroup(
        group_key=dedup_key(heartbeat.name),
        status="firing",
        receiver="",
        group_labels={},
        common_labels=labels,
        common_annotations=annotations,
        external_url="",
        truncated_alerts=0,
        alerts=(alert,),
    )


def split_watchdog(group: AlertGroup) -> tuple[bool, AlertGroup]:
    """Return whether the group's Watchdog alert fires (a ping), and the group without it
    (a Watchdog is a ping, never an incident)."""
    watchdog = [a for a in group.alerts if a.labels.get("alertname") == WATCHDOG]
    if not watchdog:
        return False, group
    rest = tuple(a for a in group.alerts if a.labels.get("alertname") != WATCHDOG)
    return (any(a.status == "firing" for a in watchdog), dataclasses.replace(group, alerts=rest))
