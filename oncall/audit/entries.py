"""Audit entries as values. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from oncall.clock import isoformat

# The actions recorded so far; another part records its own under a name of its own.
OVERRIDE_CREATE = "override.create"
OVERRIDE_DELETE = "override.delete"
FEED_CREATE = "calendar_feed.create"
FEED_ROTATE = "calendar_feed.rotate"
FEED_REVOKE = "calendar_feed.revoke"
PASSWORD_SET = "password.set"


@dataclass(frozen=True)
class Entry:
    """One record: `actor` did `action` to `subject` at `at`; `detail` says what it was."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def storable(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Return `detail` with its datetimes as RFC 3339 text, so it can be stored as JSON."""
    return {
        key: isoformat(value) if isinstance(value, datetime) else value
        for key, value in detail.items()
    }
