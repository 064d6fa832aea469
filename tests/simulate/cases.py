"""A case both the simulator and the engine run: a directory file, the overrides made
through the API before the alert, the alert itself, when it comes and what follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Contacts point at `${HOOK}/<user>/<contact>`: the real HTTP receiver of the engine's run,
# whose address is known only once it listens.
HOOK = "HOOK"
AM_TOKEN = "sim-am-token-0123456789abcdefghijklmnopqr"
EV_TOKEN = "sim-ev-token-0123456789abcdefghijklmnopqr"
ADMIN_TOKEN = "sim-admin-token-0123456789abcdefghijklmno"
INTEGRATION = {"alertmanager": "am", "events_v2": "ev"}
PRIOR_SOURCE = "prior"  # the Events v2 source of the incidents opened before a storm


def prior_event(index: int) -> dict[str, Any]:
    """Return the trigger of the `index`-th incident opened before the case's."""
    return {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": f"prior-{index}",
        "payload": {"summary": "Earlier", "source": PRIOR_SOURCE, "severity": "error"},
    }


@dataclass(frozen=True)
class OverrideSpec:
    schedule: str
    user: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Case:
    directory: str  # YAML text; `${HOOK}` is the receiver's URL
    source: str  # "alertmanager" | "events_v2"
    payload: Mapping[str, Any]
    at: datetime  # aware UTC: when the alert arrives
    hours: float  # how long both run after `at`
    acknowledge_after: timedelta | None  # someone acknowledges this long after `at`
    overrides: tuple[OverrideSpec, ...] = ()
    # Maintenance windows added through the API before the alert (as its JSON bodies).
    api_windows: tuple[Mapping[str, Any], ...] = ()
    # A storm: `[paging] storm_threshold`, and when the incidents opened before `at` opened
    # (Events v2 triggers from `source: prior`, which the directory's first route sends to
    # a user with no contacts, so they page nobody).
    storm: str | None = None
    prior: tuple[datetime, ...] = ()

    @property
    def end(self) -> datetime:
        return self.at + timedelta(hours=self.hours)

    @property
    def acknowledge_at(self) -> datetime | None:
        return None if self.acknowledge_after is None else self.at + self.acknowledge_after


@dataclass(frozen=True, order=True)
class Sent:
    """One page as both sides describe it; `at` is when it went out (aware UTC). A storm's
    digest says level 0, repeat 0, as its row in the outbox does."""

    at: datetime
    level: int
    repeat: int
    user: str
    contact: str
    channel: str
    digest: bool = False

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M:%S}Z L{self.level}/R{self.repeat} "
            f"{self.user}/{self.contact} ({self.channel}){' digest' if self.digest else ''}"
        )
