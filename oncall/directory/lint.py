"""The lint: what a valid directory file lets go wrong, each warning with its path. Pure.

A directory can parse and still miss an incident: a schedule with nobody on call on Sunday
nights, a level that then pages nobody, a user nobody can reach, a route an earlier one
shadows, an integration whose alerts all fall through to the catch-all. `lint` finds these
for the next `LOOKAHEAD` from `now`, exactly (the schedules' own shifts, the routes' own
matchers), and never refuses anything: warnings are advice, problems are `parse`'s.

Paths name what they point at, as parse's errors do, but by name where the file has
one: `schedules.primary`, `policies.web.levels[1]` (levels and routes count from 0, as
in parse's errors), `users.bob.contacts`, `routes[2]`, `integrations.am`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from oncall.directory.coverage import Span, common_gaps, schedule_gaps
from oncall.directory.model import URGENCIES, Directory, Integration, Route
from oncall.ingest.events_v2 import SEVERITIES, parse_event
from oncall.ingest.heartbeats import missed_group
from oncall.notify.outbox import rule_pages
from oncall.routing.matchers import Matcher
from oncall.schedules.overrides import Override

LOOKAHEAD = timedelta(days=30)
# An integration's possible labels: per name, the values it can take (None: any text);
# a name missing is a label the integration never sets, which matchers read as "".
LabelSpace = dict[str, frozenset[str] | None]
_NEVER_SET = frozenset({""})


@dataclass(frozen=True)
class Warning:
    """One thing to look at in the directory file: where (`path`) and why (`message`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def lint(
    directory: Directory,
    now: datetime,
    overrides: Mapping[str, Sequence[Override]] | None = None,
) -> list[Warning]:
    """Return the directory's warnings for [now, now + LOOKAHEAD), in the file's order of
    sections (integrations, users, schedules, policies, routes).

    `overrides` (per schedule, as stored) fill gaps; without them the file is read alone.
    """
    gaps = _gaps(directory, now, overrides or {})
    return [
        *integration_warnings(directory, now),
        *user_warnings(directory),
        *schedule_warnings(directory, gaps, now + LOOKAHEAD),
        *policy_warnings(directory, gaps, now + LOOKAHEAD),
        *route_warnings(directory),
    ]


def _gaps(
    directory: Directory, now: datetime, overrides: Mapping[str, Sequence[Override]]
) -> dict[str, list[Span]]:
    """Return the gaps of each schedule a policy level notifies."""
    end = now + LOOKAHEAD
    return {
        name: schedule_gaps(directory.schedules[name], overrides.get(name, ()), now, end)
        for name in used_schedules(directory)
        if name in directory.schedules
    }


def used_schedules(directory: Directory) -> set[str]:
    """Return the names of the schedules some policy level notifies (the ones whose
    overrides `lint` reads)."""
    return {
        target.name
        for policy in directory.policies.values()
        for level in policy.levels
        for target in level.targets
        if target.kind == "schedule"
    }


def _local(instant: datetime, zone: ZoneInfo) -> str:
    """Return `instant` as local wall-clock time with the zone's abbreviation (which tells
    the two 02:30s of an autumn night apart)."""
    local = instant.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if local.second else "%Y-%m-%d %H:%M %Z")


def _span(span: Span, zone: ZoneInfo, horizon: datetime) -> str:
    start, end = span
    text = f"from {_local(start, zone)} to {_local(end, zone)} ({zone.key})"
    if end >= horizon:
        text += f", the end of the {LOOKAHEAD.days} days checked"
    return text


def user_warnings(directory: Directory) -> list[Warning]:
    """Return a warning per user without any contact (naming the levels that page them),
    and per urgency whose notification rules page none of the user's contacts."""
    paged_by = _levels_paging(directory)
    warnings = []
    for user in directory.users.values():
        if not user.contacts:
            where = paged_by.get(user.name, [])
            also = f"; paged by {', '.join(where)}" if where else ""
            warnings.append(
                Warning(
                    f"users.{user.name}.contacts",
                    f"{user.name} has no contact: a page to {user.name} reaches nobody{also}",
                )
            )
            continue
        for urgency in URGENCIES:
            if not rule_pages(user, urgency):
                warnings.append(
                    Warning(
                        f"users.{user.name}.notification_rules",
                        f"{urgency}-urgency pages reach none of {user.name}'s contacts: "
                        "no rule of that urgency names a contact the user has",
                    )
                )
    return warnings


def _levels_paging(directory: Directory) -> dict[str, list[str]]:
    """Return, per user, the levels that can page them (as `path via target`)."""
    found: dict[str, list[str]] = {}
    for policy in directory.policies.values():
        for index, level in enumerate(policy.levels):
            path = f"policies.{policy.name}.levels[{index}]"
            for target in level.targets:
                schedule = directory.schedules.get(target.name)
                if target.kind == "user":
                    people = [target.name]
                elif schedule is not None:
                    people = sorted({m for layer in schedule.layers for m in layer.members})
                else:
                    people = []
                for person in people:
                    found.setdefault(person, []).append(f"{path} via {target}")
    return found


def schedule_warnings(
    directory: Directory, gaps: Mapping[str, Sequence[Span]], horizon: datetime
) -> list[Warning]:
    """Return a warning per schedule no level notifies, and per gap of those one does."""
    warnings = []
    for schedule in directory.schedules.values():
        path = f"schedules.{schedule.name}"
        if schedule.name not in gaps:
            warnings.append(
                Warning(path, f"nothing uses it: no policy level notifies schedule:{schedule.name}")
            )
            continue
        for span in gaps[schedule.name]:
            warnings.append(Warning(path, f"nobody on call {_span(span, schedule.zone, horizon)}"))
    return warnings


def policy_warnings(
    directory: Directory, gaps: Mapping[str, Sequence[Span]], horizon: datetime
) -> list[Warning]:
    """Return a warning per policy no route uses, and per span of a level's that pages
    nobody: every target a schedule with nobody on call then (a user target always pages)."""
    used = {route.policy for route in directory.routes}
    warnings = []
    for policy in directory.policies.values():
        if policy.name not in used:
            path = f"policies.{policy.name}"
            warnings.append(Warning(path, "nothing uses it: no route names it"))
        for index, level in enumerate(policy.levels):
            names = [t.name for t in level.targets]
            if any(t.kind != "schedule" for t in level.targets) or not set(names) <= set(gaps):
                continue
            zone = directory.schedules[names[0]].zone
            empty = " and ".join(f"schedule:{n}" for n in dict.fromkeys(names))
            for span in common_gaps([gaps[name] for name in names]):
                warnings.append(
                    Warning(
                        f"policies.{policy.name}.levels[{index}]",
                        f"pages nobody {_span(span, zone, horizon)}: nobody is on call "
                        f"in {empty} then",
                    )
                )
    return warnings


def route_warnings(directory: Directory) -> list[Warning]:
    """Return a warning per route that can never match: its own matchers contradict each
    other, or an earlier route matches every alert it matches."""
    warnings = []
    routes = directory.routes
    for position, route in enumerate(routes):
        path = f"routes[{route.index}]"
        clash = _contradiction(route.matchers)
        if clash is not None:
            warnings.append(
                Warning(
                    path,
                    f"can never match: its matchers {clash[0]} and {clash[1]} contradict "
                    "each other",
                )
            )
            continue
        earlier = next((r for r in routes[:position] if _covers(r, route)), None)
        if earlier is None:
            continue
        if earlier.matchers:
            why = f"routes[{earlier.index}] {_written(earlier)} matches every alert it matches"
        else:
            why = f"routes[{earlier.index}] has no matchers and matches every alert"
        warnings.append(Warning(path, f"can never match: {why}"))
    return warnings


def _written(route: Route) -> str:
    return "{" + ", ".join(str(m) for m in route.matchers) + "}"


def _implies(given: Sequence[Matcher], wanted: Matcher) -> bool:
    """Return whether every label set the matchers `given` all accept, `wanted` accepts:
    it is one of them, or one of them fixes its label to a value it accepts."""
    return wanted in given or any(
        m.op == "=" and m.name == wanted.name and wanted.matches({m.name: m.value}) for m in given
    )


def _covers(earlier: Route, later: Route) -> bool:
    """Return whether `earlier` matches every alert `later` matches."""
    return all(_implies(later.matchers, m) for m in earlier.matchers)


def _contradiction(matchers: Sequence[Matcher]) -> tuple[Matcher, Matcher] | None:
    """Return two of `matchers` no label set satisfies together (one fixes a label to a
    value the other refuses), or None when none is found."""
    for fixed in matchers:
        if fixed.op != "=":
            continue
        for other in matchers:
            if other.name == fixed.name and not other.matches({fixed.name: fixed.value}):
                return fixed, other
    return None


def integration_warnings(directory: Directory, now: datetime) -> list[Warning]:
    """Return a warning per integration whose every alert goes to a catch-all route though
    other routes have matchers, where its labels are known (heartbeats, Events v2; an
    Alertmanager's or Grafana's labels are whatever their rules say)."""
    routes = directory.routes
    if all(not route.matchers for route in routes):
        return []  # only catch-alls: every alert is meant to go there
    warnings = []
    for integration in directory.integrations.values():
        space = label_space(integration, now)
        if space is None:
            continue
        first = next((r for r in routes if _can_match(r.matchers, space)), None)
        if first is None or first.matchers:
            continue
        labels = ", ".join(
            f'{name}="{next(iter(values))}"' if values is not None and len(values) == 1 else name
            for name, values in sorted(space.items())
        )
        warnings.append(
            Warning(
                f"integrations.{integration.name}",
                f"every alert it sends goes to the catch-all routes[{first.index}]: no earlier "
                f"route can match its labels ({labels})",
            )
        )
    return warnings


def label_space(integration: Integration, now: datetime) -> LabelSpace | None:
    """Return the labels an integration's alerts can carry, or None when they are unknown.

    Read from the ingest code itself: a heartbeat's missed-deadline alert, and an Events v2
    trigger with every payload field set (its severity one of SEVERITIES, the other labels
    the payload's free text).
    """
    if integration.type == "heartbeat":
        labels = missed_group(integration, None, now, 1).common_labels
        return {name: frozenset({value}) for name, value in labels.items()}
    if integration.type == "events_v2":
        fields = dict.fromkeys(("summary", "source", "component", "group", "class"), "lint")
        payload = {**fields, "severity": SEVERITIES[0]}
        body = {"routing_key": "lint", "event_action": "trigger", "payload": payload}
        labels = parse_event(body).labels
        return {name: frozenset(SEVERITIES) if name == "severity" else None for name in labels}
    return None


def _can_match(matchers: Sequence[Matcher], space: LabelSpace) -> bool:
    """Return whether some alert with labels in `space` might satisfy every matcher (a
    label of any text is assumed to)."""
    for name in {m.name for m in matchers}:
        values = space.get(name, _NEVER_SET)
        if values is None:
            continue
        on_name = [m for m in matchers if m.name == name]
        if not any(all(m.matches({name: value}) for m in on_name) for value in values):
            return False
    return True
