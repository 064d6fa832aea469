"""The directory's objects: integrations, users, schedules, policies and routes, frozen.

Built by `oncall.directory.parse` from the directory file; everything else only reads them.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from oncall.maintenance.windows import Window
from oncall.routing.matchers import Matcher
from oncall.schedules.rotation import Schedule

INTEGRATION_TYPES = ("alertmanager", "events_v2", "grafana", "heartbeat")
DEFAULT_RATE_LIMIT = (120, timedelta(minutes=1))  # PagerDuty's per-integration default
TARGET_KINDS = ("user", "schedule")
# An incident's urgency: high escalates through every level, low pages level 1 only.
HIGH, LOW = "high", "low"
URGENCIES = (HIGH, LOW)
BY_SEVERITY = "by_severity"  # a route's urgency: high or low by the incident's severity
ROUTE_URGENCIES = (HIGH, LOW, BY_SEVERITY)
_Found = TypeVar("_Found")


@dataclass(frozen=True)
class Integration:
    name: str
    type: str
    token: str
    rate_limit: tuple[int, timedelta] = DEFAULT_RATE_LIMIT  # events per window
    # heartbeat: a ping is expected every `interval`; an incident opens `grace` after that.
    interval: timedelta | None = None
    grace: timedelta = timedelta(0)
    watchdog_of: str = ""  # an alertmanager integration whose Watchdog alert pings this

    @property
    def deadline_after(self) -> timedelta:
        """Return how long after a ping the heartbeat's incident opens without another."""
        return (self.interval or timedelta(0)) + self.grace


@dataclass(frozen=True)
class Contact:
    index: int  # position in the user's list
    type: str
    address: str  # `to` for email, `url` for the others
    secret: str
    # The stable key pages point at: `name:` in the file, else the type, with `-2`, `-3`
    # for a user's second and third contact of that type.
    name: str = ""


@dataclass(frozen=True)
class NotificationRule:
    """Page the contact named `contact` this long after the level that pages its user fired."""

    contact: str
    after: timedelta


@dataclass(frozen=True)
class User:
    name: str
    full_name: str
    time_zone: str
    api_token: str
    contacts: tuple[Contact, ...]
    # `admin` may also manage others' overrides and reload the directory.
    role: str = "responder"
    # (urgency, its rules) for each urgency the file gives rules for; others page every
    # contact at once. Pairs, not a mapping, so the user stays hashable.
    notification_rules: tuple[tuple[str, tuple[NotificationRule, ...]], ...] = ()

    def rules(self, urgency: str) -> tuple[NotificationRule, ...]:
        """Return the user's rules for `urgency`: the file's, else every contact at once."""
        for given, rules in self.notification_rules:
            if given == urgency:
                return rules
        return tuple(NotificationRule(c.name, timedelta(0)) for c in self.contacts)

    @property
    def is_admin(self) -> bool:
        """Return whether the user holds the admin role."""
        return self.role == "admin"


@dataclass(frozen=True)
class Target:
    """An escalation target: `user:NAME` or `schedule:NAME`."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Level:
    targets: tuple[Target, ...]
    escalate_after: timedelta


@dataclass(frozen=True)
class Policy:
    name: str
    repeat: int
    levels: tuple[Level, ...]
    ack_timeout: timedelta | None = None  # an acknowledgement lasts this long, or for ever


@dataclass(frozen=True)
class Route:
    index: int
    matchers: tuple[Matcher, ...]
    policy: str
    notify_resolved: bool
    urgency: str = HIGH  # one of ROUTE_URGENCIES
    ack_timeout: timedelta | None = None  # wins over its policy's

    def describe(self) -> str:
        """Return the route as written, for the timeline: `routes[0] {a="b"}`."""
        inner = ", ".join(str(m) for m in self.matchers)
        return f"routes[{self.index}] {{{inner}}}"


@dataclass(frozen=True)
class Directory:
    integrations: Mapping[str, Integration]
    users: Mapping[str, User]
    policies: Mapping[str, Policy]
    routes: tuple[Route, ...]
    source: str
    schedules: Mapping[str, Schedule] = dataclasses.field(default_factory=dict)
    maintenance: tuple[Window, ...] = ()  # the file's windows (the API's are in the database)

    def integration_for_token(self, type_: str, token: str) -> Integration | None:
        """Return the integration of `type_` whose token is `token`, or None.

        Compares against every candidate in constant time so timing reveals nothing.
        """
        return _find_by_token(
            ((i, i.token) for i in self.integrations.values() if i.type == type_), token
        )

    def user_for_token(self, token: str) -> User | None:
        """Return the user whose API token is `token`, or None (constant-time comparison)."""
        return _find_by_token(((u, u.api_token) for u in self.users.values() if u.api_token), token)

    def heartbeats_fed_by(self, integration: str) -> list[Integration]:
        """Return the heartbeats whose pings are `integration`'s Watchdog alert."""
        return [
            i
            for i in self.integrations.values()
            if i.type == "heartbeat" and i.watchdog_of == integration
        ]


def _find_by_token(candidates: Iterable[tuple[_Found, str]], token: str) -> _Found | None:
    found = None
    given = token.encode()
    for item, expected in candidates:
        if hmac.compare_digest(given, expected.encode()) and found is None:
            found = item
    return found
