"""Heartbeats in the database: a ping arms a deadline; a missed deadline opens an incident."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from oncall.alertmanager import AlertGroup, IncomingAlert
from oncall.clock import isoformat
from oncall.directory import Directory, Integration
from oncall.followups import Followups
from oncall.models import heartbeats
from oncall.store import IngestResult, ingest_group, open_incident_id, resolve

DEDUP_PREFIX = "heartbeat:"


def ping(conn: Connection, heartbeat: Integration, now: datetime) -> tuple[datetime, Followups]:
    """Record a ping: arm the next deadline and resolve the heartbeat's open incident.

    Returns the deadline (for the timer) and what Redis must do after commit.
    """
    deadline = now + heartbeat.deadline_after
    values = {"last_ping_at": now, "deadline_at": deadline}
    if not conn.execute(update(heartbeats).where(heartbeats.c.name == heartbeat.name)
                        .values(**values)).rowcount:
        conn.execute(insert(heartbeats).values(name=heartbeat.name, **values))
    followups = Followups()
    open_id = open_incident_id(conn, heartbeat.name, DEDUP_PREFIX + heartbeat.name)
    if open_id is not None:
        followups = resolve(conn, open_id, heartbeat.name, now, reason="heartbeat ping").followups
    return deadline, followups


def check(conn: Connection, heartbeat: Integration, directory: Directory,
          now: datetime) -> IngestResult:
    """Open an incident if the armed deadline has passed without a ping; else do nothing.

    The deadline is claimed with a conditional UPDATE, so a duplicate or stale timer (a ping
    came in, re-arming it) opens nothing.
    """
    row = conn.execute(select(heartbeats).where(heartbeats.c.name == heartbeat.name)).first()
    if row is None or row.deadline_at is None or row.deadline_at > now:
        return IngestResult()
    claimed = conn.execute(update(heartbeats).where(
        heartbeats.c.name == heartbeat.name, heartbeats.c.deadline_at == row.deadline_at)
        .values(deadline_at=None, missed=row.missed + 1)).rowcount
    if claimed != 1:
        return IngestResult()
    labels = {"alertname": "HeartbeatMissed", "heartbeat": heartbeat.name,
              "severity": "critical"}
    annotations = {"summary": f"No heartbeat from {heartbeat.name} since "
                              f"{isoformat(row.last_ping_at)}"}
    alert = IncomingAlert(fingerprint=f"heartbeat-{heartbeat.name}-{row.missed + 1}",
                          status="firing", labels=labels, annotations=annotations,
                          starts_at=row.deadline_at, ends_at=None, generator_url="")
    group = AlertGroup(group_key=DEDUP_PREFIX + heartbeat.name, status="firing", receiver="",
                       group_labels={}, common_labels=labels, common_annotations=annotations,
                       external_url="", truncated_alerts=0, alerts=(alert,))
    return ingest_group(conn, heartbeat.name, group, directory, now)


def armed(conn: Connection) -> list[tuple[str, datetime]]:
    """Return every armed deadline: what the escalation job store must hold."""
    return [(name, deadline) for name, deadline in conn.execute(
        select(heartbeats.c.name, heartbeats.c.deadline_at)
        .where(heartbeats.c.deadline_at.is_not(None)))]
