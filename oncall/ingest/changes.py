"""Change events: which ones an incident shows, and how long they are kept. Pure.

An incident shows the change events its integration received in the WINDOW before it
opened ("what changed"), newest first, at most SHOWN. The window is on the time each was
received (our clock), not on the sender's `timestamp`, which is shown but may be missing,
late or off.

They are kept for RETENTION, and at most CHANGES_KEPT per integration: each change event
stored prunes its integration's older ones in the same transaction, so the table is
bounded however fast a deploy pipeline sends (its rate is also the integration's rate
limit). Past a week an incident no longer shows what changed before it; its own timeline
and alerts are kept as ever.
"""

from __future__ import annotations

from datetime import datetime, timedelta

WINDOW = timedelta(hours=2)
SHOWN = 50
RETENTION = timedelta(days=7)
CHANGES_KEPT = 1000


def shown_window(opened_at: datetime) -> tuple[datetime, datetime]:
    """Return the instants [start, end] of the change events an incident opened at
    `opened_at` shows."""
    return opened_at - WINDOW, opened_at


def kept_since(now: datetime) -> datetime:
    """Return the oldest receipt time still kept at `now`: older change events are pruned."""
    return now - RETENTION
