"""The dedup decision: what one Alertmanager delivery changes. Pure: no I/O, no clock.

Rules (GoAlert and PagerDuty users expect these):
- One open incident per (integration, groupKey).
- An occurrence (fingerprint + startsAt) has one stored row per generation; its newest
  generation is the one a delivery is matched against. While that row's incident is open,
  a re-delivery never duplicates anything: a firing re-delivery changes nothing, and a
  resolved one resolves the row once (a resolved row stays resolved while its incident is
  open, even when a late firing copy arrives).
- A re-fire: a delivery that shows an occurrence firing whose newest row belongs to a
  closed incident (resolved by a person or an event while the alert still fired, or
  auto-resolved because the source resolved the alert before reporting it firing again)
  stores the next generation of that occurrence, which joins the group's open incident or
  opens a new one, as PagerDuty does for a resolved dedup key; a closed incident is never
  reopened. A resolved re-delivery to a closed incident changes nothing.
- New firing occurrences join the group's open incident (acknowledged stays acknowledged),
  or open a new incident when the group has none.
- Alerts resolve one by one; an open incident whose last firing alert resolves auto-resolves.
- Alertmanager merges a re-sent alert into the active one keeping the earliest startsAt (amtool
  `--start` truncates to milliseconds, so this happens in practice): an unknown occurrence
  whose fingerprint is firing in an open incident with a start at or after the incoming one is
  that occurrence, re-keyed to the earlier start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from oncall.ingest.alertmanager import AlertGroup, IncomingAlert


@dataclass(frozen=True)
class OpenIncident:
    id: int
    firing_count: int
    truncated_alerts: int


@dataclass(frozen=True)
class KnownAlert:
    """An occurrence already stored, with the state of the incident it belongs to."""

    id: int
    incident_id: int
    fingerprint: str
    status: str
    incident_open: bool
    starts_at: datetime
    generation: int = 0  # 0 for the first row of an occurrence, +1 for each re-fire


@dataclass(frozen=True)
class Refire:
    """An occurrence firing again after its incident closed: stored as `previous`'s next
    generation in the change's incident."""

    alert: IncomingAlert
    previous: KnownAlert

    @property
    def generation(self) -> int:
        """Return the generation the new row is stored with."""
        return self.previous.generation + 1

    @property
    def still_firing(self) -> bool:
        """Return whether the previous incident closed while this alert still fired (a
        person or an event resolved it), rather than because the alert resolved."""
        return self.previous.status == "firing"


@dataclass
class IncidentChange:
    """What to do to one incident; `incident_id` None means: open a new incident."""

    incident_id: int | None
    add: list[IncomingAlert] = field(default_factory=list)
    # occurrences whose previous incident closed and that fire again (stored as new rows)
    refire: list[Refire] = field(default_factory=list)
    # (alert id, fingerprint, endsAt) of stored firing occurrences that now resolve
    resolve: list[tuple[int, str, datetime | None]] = field(default_factory=list)
    # (alert id, new startsAt) of occurrences Alertmanager re-sent with an earlier start
    rekey: list[tuple[int, datetime]] = field(default_factory=list)
    firing_before: int = 0
    truncated_alerts: int | None = None  # set when the stored value must change

    @property
    def firing_after(self) -> int:
        added = sum(1 for a in self.add if a.status == "firing") + len(self.refire)
        return self.firing_before + added - len(self.resolve)

    @property
    def rows_added(self) -> int:
        """Return how many alert rows this change stores (new occurrences and re-fires)."""
        return len(self.add) + len(self.refire)

    @property
    def auto_resolves(self) -> bool:
        """Whether this change resolves the last firing alert of an open incident."""
        return self.incident_id is not None and bool(self.resolve) and self.firing_after <= 0


def plan_delivery(
    group: AlertGroup,
    open_incident: OpenIncident | None,
    stored: list[KnownAlert] | tuple[KnownAlert, ...],
    open_firing: Mapping[int, int],
) -> list[IncidentChange]:
    """Return the changes one delivery makes; an empty list means a pure re-delivery.

    `stored` holds every stored occurrence of the delivery's fingerprints (any start);
    `open_firing` gives the firing count of every open incident among them.
    """
    changes: dict[int | None, IncidentChange] = {}
    firing = dict(open_firing)
    if open_incident is not None:
        firing[open_incident.id] = open_incident.firing_count

    def change_for(incident_id: int | None) -> IncidentChange:
        if incident_id not in changes:
            before = firing.get(incident_id, 0) if incident_id is not None else 0
            changes[incident_id] = IncidentChange(incident_id, firing_before=before)
        return changes[incident_id]

    matched = _match_occurrences(group.alerts, stored)
    group_target = open_incident.id if open_incident is not None else None
    fresh = [a for a in group.alerts if id(a) not in matched]
    # Only a closed incident's occurrence can re-fire: while the incident is open, a firing
    # copy of a resolved row may be a late retry of an older notification.
    refires = [
        Refire(a, row)
        for a in group.alerts
        if a.status == "firing"
        and (row := matched.get(id(a))) is not None
        and not row.incident_open
    ]
    opens_new = open_incident is None and (
        bool(refires) or any(a.status == "firing" for a in fresh)
    )
    if (open_incident is not None or opens_new) and (fresh or refires):
        change_for(group_target).add.extend(fresh)
        change_for(group_target).refire.extend(refires)
    # else: only resolved occurrences we never saw firing and no incident to record them in.

    for alert in group.alerts:
        row = matched.get(id(alert))
        if row is None or not row.incident_open:
            continue
        if row.starts_at != alert.starts_at:
            change_for(row.incident_id).rekey.append((row.id, alert.starts_at))
        if row.status == "firing" and alert.status == "resolved":
            change_for(row.incident_id).resolve.append((row.id, alert.fingerprint, alert.ends_at))

    if open_incident is not None and group.truncated_alerts != open_incident.truncated_alerts:
        change_for(group_target).truncated_alerts = group.truncated_alerts
    elif opens_new and group.truncated_alerts:
        change_for(None).truncated_alerts = group.truncated_alerts
    return list(changes.values())


def _match_occurrences(
    incoming: tuple[IncomingAlert, ...], stored: list[KnownAlert] | tuple[KnownAlert, ...]
) -> dict[int, KnownAlert]:
    """Return, keyed by id() of each incoming alert, the stored occurrence it is (the
    newest generation of an exact match, else a firing row of an open incident that
    Alertmanager re-sent with an earlier start)."""
    exact: dict[tuple[str, datetime], KnownAlert] = {}
    for known in stored:
        key = (known.fingerprint, known.starts_at)
        current = exact.get(key)
        if current is None or known.generation > current.generation:
            exact[key] = known
    firing_open: dict[str, KnownAlert] = {}
    for known in stored:
        if known.incident_open and known.status == "firing":
            current = firing_open.get(known.fingerprint)
            if current is None or known.starts_at > current.starts_at:
                firing_open[known.fingerprint] = known
    matched: dict[int, KnownAlert] = {}
    taken: set[int] = set()
    row: KnownAlert | None
    for alert in incoming:
        row = exact.get((alert.fingerprint, alert.starts_at))
        if row is not None:
            matched[id(alert)] = row
            taken.add(row.id)
    for alert in incoming:
        if id(alert) in matched:
            continue
        row = firing_open.get(alert.fingerprint)
        if row is not None and row.id not in taken and row.starts_at >= alert.starts_at:
            matched[id(alert)] = row
            taken.add(row.id)
    return matched
