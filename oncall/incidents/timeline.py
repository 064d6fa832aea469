"""The incident timeline: every entry is one row built here, whoever records it. Pure.

Each store appends the entries of its own transaction (`incident_events`), in order: the
timeline reads in id order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SYSTEM_ACTOR = "system"


def entry(
    incident_id: int, at: datetime, type_: str, actor: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """Return one timeline entry as the row of `incident_events` it is stored as."""
    return {"incident_id": incident_id, "at": at, "type": type_, "actor": actor, "detail": detail}
