"""An incident's life over the simulated span, decided step by step by the engine's own
pure functions, as its timers would fire them: escalation steps, the pages of each step
(after notification rules and the storm guard), the acknowledgement and its timeout,
maintenance windows opening and closing. Pure.

Things due at one instant happen in this order: a window's edge, the acknowledgement,
the acknowledgement's timeout, the escalation step, then pages (so a step's immediate
pages go out at its instant, and an acknowledgement at the instant of a step stops it).
Every moment up to and including the span's end counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from oncall.directory.model import Contact, Directory, Policy
from oncall.escalation.steps import FIRST_STEP, Step, following
from oncall.escalation.targets import recipients, resolve
from oncall.incidents.lifecycle import ACKNOWLEDGED, TRIGGERED
from oncall.incidents.wakes import ack_timeout, wake
from oncall.ingest.opening import Opening
from oncall.maintenance.windows import (
    HOLD,
    MOVE,
    RELEASE,
    Window,
    covering,
    edge_change,
    next_edge,
)
from oncall.notify.outbox import level_pages
from oncall.notify.storm import StormThreshold, fold, in_storm, storm_possible
from oncall.schedules.overrides import Override
from oncall.simulate.answer import Note, Page, StepFired

# What is due at one instant happens in this order.
EDGE, ACK, WAKE, STEP, PAGE = range(5)
RELEASE_HORIZON = timedelta(days=366)  # how far ahead a holding window's end is looked for


@dataclass(frozen=True)
class _Written:
    """A page written and not yet gone out."""

    due: datetime
    user: str
    contact: Contact
    level: int
    repeat: int
    digest: bool

    @property
    def order(self) -> tuple[datetime, int, int, str, str]:
        return (self.due, self.level, self.repeat, self.user, self.contact.name)


class Life:
    """One incident, from its opening at `start` to `end`; `run` returns what happened."""

    def __init__(
        self,
        directory: Directory,
        opening: Opening,
        labels: dict[str, str],
        integration: str,
        start: datetime,
        end: datetime,
        *,
        overrides: Mapping[str, Sequence[Override]],
        windows: Sequence[Window],
        opened: Sequence[datetime],
        storm: StormThreshold,
        acknowledge_at: datetime | None,
        held: Window | None,
    ) -> None:
        self.directory = directory
        self.opening = opening
        self.policy: Policy | None = opening.policy
        self.labels = labels
        self.integration = integration
        self.start, self.end = start, end
        self.overrides = overrides
        self.windows = windows
        # The storm guard reads the newest openings, this incident's among them.
        self.opened = sorted([*opened, start], reverse=True)
        self.storm = storm
        self.status = TRIGGERED
        self.held = held
        self.next_step: tuple[Step, datetime] | None = None
        self.written: list[_Written] = []
        self.digest_pending: dict[str, datetime] = {}
        self.last_digest: dict[str, datetime] = {}
        self.acknowledge_at = acknowledge_at
        self.ack_timeout_at: datetime | None = None
        self.edges_from = start
        self.steps: list[StepFired] = []
        self.pages: list[Page] = []
        self.notes: list[Note] = []

    def run(self) -> tuple[list[StepFired], list[Page], list[Note]]:
        """Return the steps fired, the pages sent (sorted) and the notes, in the span."""
        if self.held is not None:
            self._note(self.start, "held", f"maintenance window {self.held.name!r} holds it")
        else:
            self._fire(FIRST_STEP, self.start)
        while (due := self._next()) is not None and due[0] <= self.end:
            at, kind = due
            if kind == EDGE:
                self._edge(at)
            elif kind == ACK:
                self._acknowledge(at)
            elif kind == WAKE:
                self._wake(at)
            elif kind == STEP:
                assert self.next_step is not None
                step, _ = self.next_step
                self.next_step = None
                self._fire(step, at)
            else:
                self._send(at)
        return self.steps, sorted(self.pages, key=lambda p: p.order), self.notes

    def _next(self) -> tuple[datetime, int] | None:
        """Return the next thing due: its instant and kind."""
        due: list[tuple[datetime, int]] = []
        edge = next_edge(self.windows, self.edges_from)
        if edge is not None:
            due.append((edge, EDGE))
        if self.acknowledge_at is not None:
            due.append((self.acknowledge_at, ACK))
        if self.ack_timeout_at is not None and self.status == ACKNOWLEDGED:
            due.append((self.ack_timeout_at, WAKE))
        if self.next_step is not None and self.status == TRIGGERED and self.held is None:
            due.append((self.next_step[1], STEP))
        if self.written:
            due.append((min(w.due for w in self.written), PAGE))
        return min(due, default=None)

    def _note(self, at: datetime, kind: str, text: str) -> None:
        self.notes.append(Note(at, kind, text))

    def _stop_pages(self) -> None:
        """Cancel the unsent pages, as closing or holding an incident does (a digest
        stays: it is about every incident of the storm)."""
        self.written = [w for w in self.written if w.digest]

    def _fire(self, step: Step, at: datetime) -> None:
        """Fire `step` at `at` (`escalation.store.fire_step`): page its level's targets,
        and point at the step after it."""
        policy = self.policy
        if policy is None or step.is_exhaustion(policy):
            self.next_step = None
            self._note(at, "exhausted", "the escalation has paged every step; nobody acknowledged")
            return
        self.next_step = following(policy, step, at, self.opening.urgency)
        level = policy.levels[step.level - 1]
        resolved = resolve(level.targets, self.directory, self.overrides, at)
        self.steps.append(StepFired(at, step.level, step.repeat, tuple(resolved)))
        paged, nobody = recipients(level.targets, self.directory, self.overrides, at)
        for schedule in nobody:
            self._note(at, "nobody_on_call", f"schedule {schedule!r} has nobody on call")
        users = [self.directory.users[name] for name in paged]
        pages, unreachable = level_pages(users, self.opening.urgency)
        for name in unreachable:
            self._note(at, "no_contact", f"{name} has no contact methods: not paged")
        if pages and self._in_storm(at):
            self._fold([(u.name, c, after) for u, c, after in pages], step, at)
            return
        self.written += [
            _Written(at + after, user.name, contact, step.level, step.repeat, False)
            for user, contact, after in pages
        ]

    def _in_storm(self, at: datetime) -> bool:
        """Return whether the storm guard folds pages at `at` (`notify.store.storm_now`)."""
        count = self.storm.count
        nth = self.opened[count] if len(self.opened) > count else None
        if not storm_possible(nth, self.storm, at):
            return False
        return in_storm(self.opened[: self.storm.lookback], self.storm, at)

    def _fold(self, pages: list[tuple[str, Contact, timedelta]], step: Step, at: datetime) -> None:
        folded, digests = fold(
            pages, lambda user: user in self.digest_pending, self.last_digest.get, at
        )
        self._note(at, "storm", f"in an alert storm: pages to {', '.join(folded)} become digests")
        for user, contact, due in digests:
            self.written.append(_Written(due, user, contact, step.level, step.repeat, True))
            self.digest_pending[user] = due

    def _send(self, at: datetime) -> None:
        """Send the first page due at `at` (`notify.store.claim`)."""
        page = min(self.written, key=lambda w: w.order)
        self.written.remove(page)
        if page.digest:
            self.digest_pending.pop(page.user, None)
            self.last_digest[page.user] = at
        elif self.status != TRIGGERED:
            return
        self.pages.append(
            Page(
                at,
                page.user,
                page.contact.name,
                page.contact.type,
                page.level,
                page.repeat,
                page.digest,
            )
        )

    def _acknowledge(self, at: datetime) -> None:
        """Someone acknowledges (`incidents.store.acknowledge`): the escalation and the
        unsent pages stop; the acknowledgement lasts its route's or policy's timeout."""
        self.acknowledge_at = None
        if self.status != TRIGGERED:
            return
        self.status = ACKNOWLEDGED
        self.next_step = None
        self._stop_pages()
        timeout = ack_timeout(
            self.directory, self.opening.route.describe(), self.opening.route.policy
        )
        self.ack_timeout_at = None if timeout is None else at + timeout
        until = "" if self.ack_timeout_at is None else " until its timeout"
        self._note(at, "acknowledged", f"acknowledged{until}: the escalation stops")

    def _wake(self, at: datetime) -> None:
        """The acknowledgement times out (`incidents.store.wake`): triggered again,
        escalating from level 1, unless a window holds it."""
        restart = wake(self.status, None, self.ack_timeout_at, self.opening.route.policy, at)
        self.ack_timeout_at = None
        if restart is None:
            return
        self.status = TRIGGERED
        if self.held is not None:
            self._note(at, "ack_timeout", "the acknowledgement timed out; held, so nobody is paged")
            return
        self._note(at, "ack_timeout", "the acknowledgement timed out: triggered again at level 1")
        self._fire(restart.step, at)

    def _edge(self, at: datetime) -> None:
        """A window opens or closes (`maintenance.store.apply`)."""
        self.edges_from = at
        window = covering(self.windows, self.labels, self.integration, at)
        change = edge_change(
            None if window is None else window.key, None if self.held is None else self.held.key
        )
        if change == HOLD:
            assert window is not None
            self.held = window
            self.next_step = None
            self._stop_pages()
            self._note(at, "held", f"maintenance window {window.name!r} holds it")
        elif change == MOVE:
            assert window is not None
            self.held = window
            self._note(at, "moved", f"maintenance window {window.name!r} holds it on")
        elif change == RELEASE:
            assert self.held is not None
            name, self.held = self.held.name, None
            if self.status == TRIGGERED:
                self._note(at, "released", f"window {name!r} ends: escalating from level 1")
                self._fire(FIRST_STEP, at)
            else:
                self._note(at, "released", f"window {name!r} ends; it stays acknowledged")


def release_at(
    windows: Sequence[Window], labels: dict[str, str], integration: str, start: datetime
) -> datetime | None:
    """Return when no window holds an incident held at `start` any more: the first edge
    after which none covers it (None: not within RELEASE_HORIZON)."""
    at = start
    while (edge := next_edge(windows, at)) is not None and edge <= start + RELEASE_HORIZON:
        if covering(windows, labels, integration, edge) is None:
            return edge
        at = edge
    return None
