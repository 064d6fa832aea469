"""Maintenance in the database: the API's windows, which incidents a window holds, and the
last time the windows were applied. Each function runs inside the one transaction
`Database.run` hands it.

Which incidents are held is the truth an edge timer acts on: applying the windows at `now`
holds every open incident an open window covers and releases every held one none covers,
each claimed with a conditional UPDATE, so applying twice, or late, changes nothing more.
What holding and releasing mean for escalation and pages comes through `Holding`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Row

from oncall.db.models import incident_events, incidents, maintenance_windows, meta
from oncall.errors import NotFound
from oncall.escalation.steps import FIRST_STEP
from oncall.incidents.actions import Restart
from oncall.incidents.lifecycle import RESOLVED, TRIGGERED
from oncall.incidents.timeline import SYSTEM_ACTOR, entry
from oncall.maintenance.windows import (
    HOLD,
    MOVE,
    RELEASE,
    Window,
    check_window,
    covering,
    edge_change,
)
from oncall.timers.followups import Followups

_APPLIED = "maintenance_applied"  # meta key: when and which windows were last applied


class Holding(Protocol):
    """What holding and releasing an incident do to its escalation, in the transaction."""

    def pause_in(self, conn: Connection, incident_id: int, now: datetime) -> Followups: ...

    def release_in(
        self,
        conn: Connection,
        incident_id: int,
        actor: str,
        now: datetime,
        decide: Callable[[Row[Any]], Restart | None],
    ) -> Any: ...


@dataclass
class Applied:
    held: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # paged from level 1 again
    followups: Followups = field(default_factory=Followups)  # for Redis, after commit


def window_key(window_id: int) -> str:
    return f"api:{window_id}"


def as_window(row: Row[Any]) -> Window:
    data: dict[str, Any] = {
        "name": row.name,
        "match": row.match,
        "integrations": row.integrations,
    }
    if row.every is not None:
        data["every"] = row.every
    else:
        data["start"], data["end"] = row.start_at, row.end_at
    window, problems = check_window(data, window_key(row.id), row.integrations)
    assert window is not None, problems  # checked before it was stored
    return window


def add_window(conn: Connection, data: dict[str, Any], actor: str, now: datetime) -> Row[Any]:
    """Store a window checked by `windows.check_window` (`data`: its JSON fields); return
    its row."""
    row = conn.execute(
        insert(maintenance_windows)
        .values(
            name=data["name"],
            start_at=data.get("start"),
            end_at=data.get("end"),
            every=data.get("every"),
            match=data.get("match", []),
            integrations=data.get("integrations", []),
            created_by=actor,
            created_at=now,
        )
        .returning(*maintenance_windows.c)
    ).one()
    return row


def list_windows(conn: Connection) -> list[Row[Any]]:
    """Return the API's windows, oldest first."""
    return list(conn.execute(select(maintenance_windows).order_by(maintenance_windows.c.id)))


def stored_windows(conn: Connection) -> list[Window]:
    """Return the API's windows as windows."""
    return [as_window(row) for row in list_windows(conn)]


def delete_window(conn: Connection, window_id: int) -> Row[Any]:
    """Delete a window; return its row. Raises NotFound."""
    row = conn.execute(
        delete(maintenance_windows)
        .where(maintenance_windows.c.id == window_id)
        .returning(*maintenance_windows.c)
    ).first()
    if row is None:
        raise NotFound(f"maintenance window {window_id} not found", "id")
    return row


def fingerprint(windows: Sequence[Window]) -> str:
    """Return a digest of what `windows` are: it changes when one is added, removed or
    edited (the directory reloaded)."""
    text = repr(sorted(repr(w) for w in windows))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def last_applied(conn: Connection) -> tuple[datetime, str] | None:
    """Return when the windows were last applied and their fingerprint then; None: never."""
    value = conn.execute(select(meta.c.value).where(meta.c.key == _APPLIED)).scalar()
    if value is None:
        return None
    stored = json.loads(value)
    return datetime.fromisoformat(stored["at"]), str(stored["windows"])


def _mark_applied(conn: Connection, now: datetime, windows: Sequence[Window]) -> None:
    value = json.dumps({"at": now.isoformat(), "windows": fingerprint(windows)})
    if not conn.execute(update(meta).where(meta.c.key == _APPLIED).values(value=value)).rowcount:
        conn.execute(insert(meta).values(key=_APPLIED, value=value))


def holding(
    conn: Connection,
    file_windows: Sequence[Window],
    labels: dict[str, str],
    integration: str,
    now: datetime,
) -> Window | None:
    """Return the open window that covers a new incident, or None."""
    return covering([*file_windows, *stored_windows(conn)], labels, integration, now)


def apply(
    conn: Connection, file_windows: Sequence[Window], now: datetime, hold: Holding
) -> Applied:
    """Hold the open incidents an open window covers (their pending step and unsent pages
    cancelled) and release the held ones no open window covers (a triggered one escalates
    from level 1 now); record that the windows were applied at `now`."""
    windows = [*file_windows, *stored_windows(conn)]
    names = {w.key: w.name for w in windows}
    result = Applied()
    rows = conn.execute(
        select(
            incidents.c.id,
            incidents.c.status,
            incidents.c.labels,
            incidents.c.integration,
            incidents.c.maintenance,
        )
        .where(or_(incidents.c.status != RESOLVED, incidents.c.maintenance.is_not(None)))
        .order_by(incidents.c.id)
    ).all()
    for row in rows:
        window = None
        if row.status != RESOLVED:
            window = covering(windows, row.labels, row.integration, now)
        change = edge_change(None if window is None else window.key, row.maintenance)
        if change == HOLD:
            assert window is not None
            _hold(conn, row, window, now, hold, result)
        elif change == MOVE:
            assert window is not None
            _claim(conn, row, window.key)  # another window holds it on
        elif change == RELEASE:
            name = names.get(row.maintenance, row.maintenance)
            _release(conn, row, name, now, hold, result)
    _mark_applied(conn, now, windows)
    return result


def _claim(conn: Connection, row: Any, key: str | None, **values: Any) -> bool:
    """Set the incident's window from what `row` read; return whether it was still that."""
    return bool(
        conn.execute(
            update(incidents)
            .where(
                incidents.c.id == row.id,
                incidents.c.status == row.status,
                incidents.c.maintenance.is_(None)
                if row.maintenance is None
                else incidents.c.maintenance == row.maintenance,
            )
            .values(maintenance=key, **values)
        ).rowcount
    )


def _hold(
    conn: Connection, row: Any, window: Window, now: datetime, hold: Holding, result: Applied
) -> None:
    # The pending step is cleared with the hold, as closing an incident clears it, so the
    # reconciler stops expecting its timer; releasing points it at level 1 again.
    if not _claim(conn, row, window.key, next_due_at=None, updated_at=now):
        return
    conn.execute(
        insert(incident_events).values(
            entry(
                row.id,
                now,
                "maintenance.suppressed",
                SYSTEM_ACTOR,
                {"window": window.name, "key": window.key},
            )
        )
    )
    # Paused, not closed: a snooze's wake and an acknowledgement's timeout stay as they were.
    result.followups.merge(hold.pause_in(conn, row.id, now))
    result.held.append(row.id)


def _release(
    conn: Connection, row: Any, name: str, now: datetime, hold: Holding, result: Applied
) -> None:
    if not _claim(conn, row, None, updated_at=now):
        return
    detail = {"window": name, "key": row.maintenance}
    if row.status == RESOLVED:
        return  # resolved meanwhile: it never pages
    if row.status != TRIGGERED:  # acknowledged meanwhile: it stays so
        conn.execute(
            insert(incident_events).values(
                entry(row.id, now, "maintenance.released", SYSTEM_ACTOR, {**detail, "paged": False})
            )
        )
        return

    def decide(current: Row[Any]) -> Restart | None:
        if current.status != TRIGGERED:
            return None
        return Restart(
            FIRST_STEP, current.policy or "", "maintenance.released", {**detail, "paged": True}
        )

    action = hold.release_in(conn, row.id, SYSTEM_ACTOR, now, decide)
    if action.changed:
        result.followups.merge(action.followups)
        result.released.append(row.id)
