"""The simulation: if this payload reached this integration at this moment, what would
the engine do over the next hours? Pure: the directory, the scenario and the state the
database holds go in, a `Simulation` comes out; nothing is written and nobody is paged.

It assumes the group (or dedup key) has no open incident, so the payload opens one; and
that nobody else acts on it but the acknowledgement the scenario asks for (once, that
long after it opens) and the timers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from oncall.directory.model import Directory
from oncall.ingest.opening import plan_opening
from oncall.maintenance.windows import Window, covering
from oncall.notify.storm import DEFAULT_THRESHOLD, StormThreshold
from oncall.schedules.overrides import Override
from oncall.simulate.answer import Hold, Simulation
from oncall.simulate.handoffs import handoffs
from oncall.simulate.life import Life, release_at
from oncall.simulate.payload import opening_group, receiving

MAX_HOURS = 168.0  # a week: past that, the directory will have changed
DEFAULT_HOURS = 2.0
INCLUDED = timedelta(microseconds=1)  # the span's end is part of it: [at, end + INCLUDED)


@dataclass(frozen=True)
class Scenario:
    source: str  # "alertmanager" | "events_v2" | "grafana"
    payload: Mapping[str, Any]  # the body as the integration would receive it
    at: datetime  # aware
    hours: float = DEFAULT_HOURS  # the span simulated: 0 < hours <= MAX_HOURS
    acknowledge_after: timedelta | None = None  # someone acknowledges this long after `at`
    integration: str | None = None  # which one receives it (default: first of the type)

    @property
    def end(self) -> datetime:
        """Return the end of the simulated span (included)."""
        return self.at.astimezone(UTC) + timedelta(hours=self.hours)


@dataclass(frozen=True)
class State:
    """What the database holds that the decisions read."""

    # Each schedule's overrides overlapping the span, in creation order (later ones win).
    overrides: Mapping[str, Sequence[Override]] = field(default_factory=dict)
    # Every maintenance window: the directory file's first, then the API's.
    windows: Sequence[Window] = ()
    # When the incidents opened before `at` opened (the storm guard's input), any order.
    opened: Sequence[datetime] = ()
    storm: StormThreshold = DEFAULT_THRESHOLD


def simulate(directory: Directory, scenario: Scenario, state: State) -> Simulation:
    """Return what would happen from `scenario.at` to `scenario.end`.

    Raises InvalidInput naming `source` or `integration` (none of its type, or not one
    that takes the source), or the field under `payload` the integration would refuse (or
    `payload.alerts` / `payload.event_action` for a payload that opens no incident).
    """
    start = scenario.at.astimezone(UTC)
    integration = receiving(directory, scenario.source, scenario.integration)
    group = opening_group(directory, scenario.source, scenario.payload, integration, start)
    labels = group.common_labels
    # A window that does not cover the incident never holds it, whenever it is open.
    windows = [w for w in state.windows if w.covers(labels, integration.name)]
    held = covering(windows, labels, integration.name, start)
    opening = plan_opening(directory, group, start, held is not None)
    life = Life(
        directory,
        opening,
        labels,
        integration.name,
        start,
        scenario.end,
        overrides=state.overrides,
        windows=windows,
        opened=state.opened,
        storm=state.storm,
        acknowledge_at=None
        if scenario.acknowledge_after is None
        else start + scenario.acknowledge_after,
        held=held,
    )
    steps, pages, notes = life.run()
    hold = None
    if held is not None:
        until = release_at(windows, labels, integration.name, start)
        hold = Hold(held.name, held.key, until)
    return Simulation(
        integration=integration.name,
        title=group.title(),
        severity=group.severity(),
        labels=dict(labels),
        route=opening.route,
        skipped=opening.skipped,
        policy=opening.route.policy,
        urgency=opening.urgency,
        maintenance=hold,
        steps=tuple(steps),
        pages=tuple(pages),
        notes=tuple(notes),
        handoffs=tuple(
            handoffs(directory, opening.policy, state.overrides, start, scenario.end + INCLUDED)
        ),
        start=start,
        end=scenario.end,
    )
