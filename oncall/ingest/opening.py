"""How a new incident opens: its route (and why the routes before it did not match), its
urgency and policy, and where its escalation stands once it is open. Pure: the ingest
store carries it out, the simulator shows it.

An incident is routed by its group's common labels; its urgency comes from the route and
the group's severity. A maintenance window holding it pages nobody: it waits at level 1
with nothing due, for the window's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from oncall.directory.model import Directory, Policy, Route
from oncall.escalation.steps import FIRST_STEP, Pointer, first_pointer
from oncall.ingest.alertmanager import AlertGroup
from oncall.routing.routes import Skipped, explain_route
from oncall.routing.urgency import incident_urgency


@dataclass(frozen=True)
class Opening:
    route: Route
    skipped: tuple[Skipped, ...]  # the routes before it, each with the matcher that refused
    urgency: str
    policy: Policy | None  # None only for a directory built without its checks
    pointer: Pointer  # the next step's level, repeat and due time, written with the row


def plan_opening(directory: Directory, group: AlertGroup, now: datetime, held: bool) -> Opening:
    """Return how `group` opens an incident at `now`; `held`: a maintenance window holds
    it, so its first step does not fire (the row waits at level 1, nothing due)."""
    route, skipped = explain_route(directory.routes, group.common_labels)
    urgency = incident_urgency(route.urgency, group.severity())
    policy = directory.policies.get(route.policy)
    pointer = (
        (FIRST_STEP.level, FIRST_STEP.repeat, None) if held else first_pointer(policy, now, urgency)
    )
    return Opening(route, tuple(skipped), urgency, policy, pointer)
