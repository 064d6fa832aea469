"""The incident timeline: one function appends an entry, whoever records it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from oncall.models import incident_events
from oncall.prepared import Prepared

SYSTEM_ACTOR = "system"
_insert_event = Prepared(insert(incident_events))


def entry(incident_id: int, at: datetime, type_: str, actor: str,
          detail: dict[str, Any]) -> dict[str, Any]:
    """Return one timeline entry as the row `add_events` writes."""
    return {"incident_id": incident_id, "at": at, "type": type_, "actor": actor,
            "detail": detail}


def add_event(conn: Connection, incident_id: int, at: datetime, type_: str, actor: str,
              detail: dict[str, Any]) -> None:
    """Append one entry to an incident's timeline, in the caller's transaction."""
    _insert_event.execute(conn, entry(incident_id, at, type_, actor, detail))


def add_events(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Append entries built by `entry`, in order, with one statement."""
    if events:
        _insert_event.execute(conn, events)
