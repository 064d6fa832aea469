"""What a simulation found: the route, the policy and urgency, the maintenance window
holding the incident, each escalation step with whom its targets resolved to, and each
page. Pure; `Simulation.to_json` is the API's answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oncall.clock import isoformat
from oncall.directory.model import Route
from oncall.escalation.targets import Resolution
from oncall.routing.routes import Skipped
from oncall.simulate.handoffs import Handoff


@dataclass(frozen=True)
class Hold:
    """The maintenance window holding the incident as it opens, and when it would let it
    go (None: not within a year)."""

    window: str
    key: str
    until: datetime | None


@dataclass(frozen=True)
class StepFired:
    """An escalation step that pages: when, which level and pass, whom each target is."""

    at: datetime
    level: int
    repeat: int
    targets: tuple[Resolution, ...]


@dataclass(frozen=True)
class Page:
    """A page that goes out: when, to whom, on which contact (its name) and channel (its
    type), for which step; `digest`: a storm's digest (sent even after an acknowledgement)."""

    at: datetime
    user: str
    contact: str
    channel: str
    level: int
    repeat: int
    digest: bool = False

    @property
    def order(self) -> tuple[datetime, int, int, str, str]:
        return (self.at, self.level, self.repeat, self.user, self.contact)


@dataclass(frozen=True)
class Note:
    """Something else that happens to the incident (for people: the CLI and the page):
    `kind` is one of NOTES, `text` says it in words."""

    at: datetime
    kind: str
    text: str


# The kinds of Note, in no particular order.
NOTES = (
    "held",  # a maintenance window holds the incident: its steps and unsent pages stop
    "moved",  # another window holds it on
    "released",  # no window holds it any more
    "acknowledged",  # someone acknowledges it (`acknowledge_after`)
    "ack_timeout",  # the acknowledgement times out: triggered again at level 1
    "exhausted",  # the escalation has run through every step
    "nobody_on_call",  # a schedule target has nobody on call
    "no_contact",  # a user paged has no contact at all
    "storm",  # the storm guard folds the pages of a step into digests
)


@dataclass(frozen=True)
class Simulation:
    integration: str
    title: str
    severity: str
    labels: dict[str, str]  # the incident's: what routes and windows match against
    route: Route
    skipped: tuple[Skipped, ...]
    policy: str
    urgency: str
    maintenance: Hold | None
    steps: tuple[StepFired, ...]
    pages: tuple[Page, ...]  # sorted by Page.order
    notes: tuple[Note, ...]  # in the order they happen
    handoffs: tuple[Handoff, ...]  # of the schedules the policy pages, within the span
    start: datetime
    end: datetime  # the end of the simulated span (included)

    def to_json(self) -> dict[str, Any]:
        """Return the answer of `POST /api/v1/simulate`, times in UTC ISO 8601."""
        return {
            "route": {
                "index": self.route.index,
                "matchers": [str(m) for m in self.route.matchers],
                "skipped": [{"index": r.index, "failed": str(m)} for r, m in self.skipped],
            },
            "policy": self.policy,
            "urgency": self.urgency,
            "maintenance": None
            if self.maintenance is None
            else {"window": self.maintenance.window, "until": isoformat(self.maintenance.until)},
            "steps": [
                {
                    "at": isoformat(step.at),
                    "level": step.level,
                    "repeat": step.repeat,
                    "targets": [
                        {"target": str(t.target), "resolved_to": t.user, "via": t.via}
                        for t in step.targets
                    ],
                }
                for step in self.steps
            ],
            "pages": [_page_json(page) for page in self.pages],
        }


def _page_json(page: Page) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "at": isoformat(page.at),
        "user": page.user,
        "contact": page.contact,
        "channel": page.channel,
        "level": page.level,
        "repeat": page.repeat,
    }
    if page.digest:
        shown["digest"] = True
    return shown
