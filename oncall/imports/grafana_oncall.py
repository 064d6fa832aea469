"""`python app.py import grafana-oncall`: Grafana OnCall's public API (v1) into a directory.

Reads users (`/api/v1/users/`), schedules (`/api/v1/schedules/`) with each one's shifts
(`/api/v1/on_call_shifts/?schedule_id=`), escalation chains and their steps
(`/api/v1/escalation_chains/`, `/api/v1/escalation_policies/`), integrations and routes
(`/api/v1/integrations/`, `/api/v1/routes/`), following `next` page by page, and converts
them (`convert`, pure) into `ImportedDirectory`. Shapes as Grafana OnCall documents them
(grafana.com/docs/oncall/latest/oncall-api-reference/); an example of every answer is in
tests/data/imports/grafana_oncall/.

What maps, and how (the recurrence as Grafana OnCall's `CustomOnCallShift` expands it):
- A `rolling_users` shift is a layer whose members are its user groups in turn (from
  `start_rotation_from_user_index`), handed off every `interval` × `frequency` from local
  `start`; an event shorter than that becomes the layer's restriction (one layer per group
  of equal hours). `daily` with `by_day` hands off per selected day: one layer per weekday,
  each member list the groups that weekday sees week after week.
- A `recurrent_event` shift is a layer of one person, restricted to its events.
- Shifts are ordered by `level`: a higher level wins, as the later layer wins here.
- An escalation chain is a policy: notify steps between `wait` steps form one level, which
  escalates after the waits that follow it; `repeat_escalation` repeats it 5 times.
Overrides, single events, iCal schedules, Slack, webhooks and user groups are not carried
over; a comment says so where they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oncall.directory.model import INTEGRATION_TYPES
from oncall.durations import format_duration
from oncall.imports.agreement import Span, agreement
from oncall.imports.directory_writer import (
    ImportedContact,
    ImportedDirectory,
    ImportedIntegration,
    ImportedLayer,
    ImportedLevel,
    ImportedPolicy,
    ImportedRoute,
    ImportedSchedule,
    ImportedUser,
    Names,
)
from oncall.imports.windows import DAY, minute_of_week, weekly_restrictions
from oncall.schedules.rotation import localize

if TYPE_CHECKING:
    from oncall.imports.http import ApiClient, Params

ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
FREQUENCIES = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
}
NOTIFY_STEPS = ("notify_persons", "notify_person_next_each_time", "notify_on_call_from_schedule")
# Grafana OnCall's `repeat_escalation` step runs the chain again, at most 5 times.
GRAFANA_REPEATS = 5
# A level's escalate_after must be above zero; Grafana OnCall goes on at once without a wait.
SHORTEST_WAIT = timedelta(minutes=1)
LAST_LEVEL_WAIT = timedelta(minutes=5)  # the last level's, when the policy does not repeat
LOCAL_FORMAT = "%Y-%m-%dT%H:%M:%S"
CHECKED = timedelta(days=14)  # of final shifts the import is checked against


def auth_headers(api_token: str) -> dict[str, str]:
    """Return the headers that authenticate with a Grafana OnCall API token."""
    return {"Authorization": api_token, "Accept": "application/json"}


def next_link(body: Any, _params: Params) -> str | None:
    """Return `next` of a Grafana OnCall listing (an absolute URL), or None on the last."""
    following = body.get("next") if isinstance(body, dict) else None
    return following if isinstance(following, str) and following else None


@dataclass
class Stack:
    """What Grafana OnCall's API answered, as decoded JSON objects."""

    users: list[Any] = field(default_factory=list)
    schedules: list[Any] = field(default_factory=list)
    shifts: dict[str, list[Any]] = field(default_factory=dict)  # by schedule id
    chains: list[Any] = field(default_factory=list)
    steps: list[Any] = field(default_factory=list)  # escalation policies, every chain's
    integrations: list[Any] = field(default_factory=list)
    routes: list[Any] = field(default_factory=list)
    source: str = "Grafana OnCall"
    # Each schedule's final shifts from `final_window`'s first day to its last, by id.
    final_shifts: dict[str, list[Any]] = field(default_factory=dict)
    final_window: tuple[datetime, datetime] | None = None


async def read_stack(client: ApiClient, now: datetime) -> Stack:
    """Return everything the import needs, read from Grafana OnCall's API; the final
    shifts are of the two weeks from `now`'s day (UTC)."""

    async def listing(path: str, params: Mapping[str, str] | None = None) -> list[Any]:
        return await client.get_pages(path, "results", next_link, params)

    schedules = await listing("api/v1/schedules/")
    first = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = (first, first + CHECKED)
    dates = {"start_date": f"{window[0]:%Y-%m-%d}", "end_date": f"{window[1]:%Y-%m-%d}"}
    shifts, finals = {}, {}
    for schedule in schedules:
        schedule_id = _text(schedule, "id")
        if schedule_id and _text(schedule, "type") != "ical":
            shifts[schedule_id] = await listing(
                "api/v1/on_call_shifts/", {"schedule_id": schedule_id}
            )
            finals[schedule_id] = await listing(
                f"api/v1/schedules/{schedule_id}/final_shifts", dates
            )
    return Stack(
        users=await listing("api/v1/users/"),
        schedules=schedules,
        shifts=shifts,
        chains=await listing("api/v1/escalation_chains/"),
        steps=await listing("api/v1/escalation_policies/"),
        integrations=await listing("api/v1/integrations/"),
        routes=await listing("api/v1/routes/"),
        source=f"Grafana OnCall ({client.base_url.rstrip('/')})",
        final_shifts=finals,
        final_window=window,
    )


async def import_directory(client: ApiClient, now: datetime) -> ImportedDirectory:
    """Return the directory converted from the Grafana OnCall stack `client` reads."""
    return convert(await read_stack(client, now), now)


def convert(stack: Stack, now: datetime) -> ImportedDirectory:
    """Return the directory for what Grafana OnCall answered; `now` decides which shifts
    have ended. Pure."""
    out = ImportedDirectory(stack.source)
    converter = _Converter(stack, now, out)
    converter.users()
    converter.schedules()
    converter.policies()
    converter.integrations()
    converter.routes()
    return out


@dataclass
class _Recurrence:
    """A shift's events: the first at local `start`, each lasting `duration`."""

    start: datetime  # naive, in the schedule's zone
    duration: timedelta
    period: timedelta  # interval × frequency
    interval: int
    frequency: str
    days: list[int]  # by_day, 0 = Monday; empty: none given
    week_start: int


class _Converter:
    def __init__(self, stack: Stack, now: datetime, out: ImportedDirectory) -> None:
        self.stack = stack
        self.now = now
        self.out = out
        self.user_names = Names()
        self.schedule_names = Names()
        self.policy_names = Names()
        self.integration_names = Names()

    # Users ----------------------------------------------------------------------------

    def users(self) -> None:
        for raw in self.stack.users:
            if not isinstance(raw, dict):
                continue
            username, email = _text(raw, "username"), _text(raw, "email")
            name = self.user_names.take(
                username, email.partition("@")[0], key=_text(raw, "id"), fallback="user"
            )
            user = ImportedUser(name, username or name)
            user.time_zone = _zone(_text(raw, "timezone"), user.comments, "timezone")
            role = _text(raw, "role")
            user.role = "admin" if role == "admin" else "responder"
            if role == "observer":
                user.comments.append("an observer in Grafana OnCall: here a responder")
            if _is_email(email):
                user.contacts.append(ImportedContact("email", email))
            if _list(raw, "slack"):
                user.comments.append(
                    "Slack account not carried over: a slack contact here takes an incoming "
                    "webhook URL"
                )
            user.comments.append(
                "personal notification rules are not imported: every contact is paged at "
                "once (add notification_rules to page some later)"
            )
            self.out.users.append(user)

    # Schedules ------------------------------------------------------------------------

    def schedules(self) -> None:
        for raw in self.stack.schedules:
            if not isinstance(raw, dict):
                continue
            schedule_id, title, kind = _text(raw, "id"), _text(raw, "name"), _text(raw, "type")
            if kind == "ical":
                self.out.note(
                    "schedules",
                    f"Grafana OnCall schedule {title!r} reads an iCal feed: not carried over "
                    "(write its rotations as layers)",
                )
                continue
            comments: list[str] = []
            zone = _zone(_text(raw, "time_zone"), comments, "time_zone")
            shifts = [s for s in self.stack.shifts.get(schedule_id, []) if isinstance(s, dict)]
            ranked: list[tuple[int, int, ImportedLayer]] = []
            levels: list[int] = []
            for index, shift in enumerate(shifts):
                layers = self._shift(shift, zone, comments)
                level = _int(shift.get("level"), 0)
                if layers:
                    levels.append(level)
                ranked += [(level, index, layer) for layer in layers]
            if _text(raw, "ical_url_overrides"):
                comments.append("its iCal overrides feed is not carried over")
            if not ranked:
                self.out.note(
                    "schedules",
                    f"Grafana OnCall schedule {title!r} not carried over: no rotation with "
                    "users on call",
                )
                for comment in comments:
                    self.out.note("schedules", f"  {title}: {comment}")
                continue
            if len(levels) != len(set(levels)):
                comments.append(
                    "where shifts of one level overlap, Grafana OnCall pages everyone on "
                    "them; here the later layer wins"
                )
            ranked.sort(key=lambda item: (item[0], item[1]))
            name = self.schedule_names.take(title, key=schedule_id, fallback="schedule")
            layers = [layer for _, _, layer in ranked]
            schedule = ImportedSchedule(name, zone, layers, comments)
            if self.stack.final_window is not None and schedule_id in self.stack.final_shifts:
                comments.append(self._agreement(schedule, self.stack.final_shifts[schedule_id]))
            self.out.schedules.append(schedule)

    def _agreement(self, schedule: ImportedSchedule, finals: Sequence[Any]) -> str:
        assert self.stack.final_window is not None
        spans = []
        for shift in finals:
            begins = _instant(_text(shift, "shift_start"))
            ends = _instant(_text(shift, "shift_end"))
            user_id = _text(shift, "user_pk")
            who = self.user_names.by_key.get(user_id) or _text(shift, "user_username") or user_id
            if begins is not None and ends is not None and begins < ends:
                spans.append(Span(begins, ends, frozenset({who})))
        start, end = self.stack.final_window
        return agreement(schedule, spans, start, end, "Grafana OnCall")

    def _shift(
        self, raw: Mapping[str, Any], zone: str, schedule_comments: list[str]
    ) -> list[ImportedLayer]:
        title = _text(raw, "name") or _text(raw, "id") or "a shift"
        kind = _text(raw, "type")
        shift_zone = _text(raw, "time_zone")
        start = _local(_text(raw, "start"))
        duration = timedelta(seconds=_int(raw.get("duration"), 0))
        if start is None or duration <= timedelta(0):
            schedule_comments.append(f"shift {title!r} not carried over: no start or duration")
            return []
        in_zone = _zone(shift_zone, schedule_comments, "time_zone") if shift_zone else zone
        starts = localize(start, ZoneInfo(in_zone))
        if kind in ("single_event", "override"):
            what = "override" if kind == "override" else "one-off shift"
            people = ", ".join(self._people(_list(raw, "users"))) or "nobody"
            ends = starts + duration
            if ends <= self.now:
                return []
            schedule_comments.append(
                f"{what} {title!r} ({people}, {_shown(starts, zone)} to {_shown(ends, zone)}) "
                "not carried over: add it as an override after the import"
            )
            return []
        until = _local(_text(raw, "until"))
        if until is not None and localize(until, ZoneInfo(in_zone)) <= self.now:
            schedule_comments.append(
                f"shift {title!r} ended {until:%Y-%m-%d %H:%M}: not carried over"
            )
            return []
        comments = [f"Grafana OnCall shift {title!r}"]
        if in_zone != zone:
            start = starts.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            comments.append(
                f"its times are {in_zone}'s in Grafana OnCall; here {zone}'s, so they move "
                "by an hour while only one of them is on daylight-saving time"
            )
        if until is not None:
            comments.append(f"it ends {until:%Y-%m-%d %H:%M} in Grafana OnCall; remove it then")
        frequency = _text(raw, "frequency")
        unit = FREQUENCIES.get(frequency)
        if unit is None:
            schedule_comments.append(
                f"shift {title!r} repeats {frequency or 'never'}: not carried over"
            )
            return []
        if kind == "rolling_users":
            groups = [g for g in _list(raw, "rolling_users") if isinstance(g, list)]
            first = _int(raw.get("start_rotation_from_user_index"), 0)
            if groups:
                first %= len(groups)
                groups = groups[first:] + groups[:first]
        elif kind == "recurrent_event":
            groups = [_list(raw, "users")]
        else:
            schedule_comments.append(f"shift {title!r} of type {kind!r} not carried over")
            return []
        members = self._turns(groups, comments)
        if not members:
            schedule_comments.append(f"shift {title!r} not carried over: it names no users")
            return []
        interval = max(_int(raw.get("interval"), 1), 1)
        days = [ICAL_DAYS.index(d) for d in _list(raw, "by_day") if d in ICAL_DAYS]
        given_start = _text(raw, "week_start") or "SU"  # Grafana OnCall's default
        week_start = ICAL_DAYS.index(given_start) if given_start in ICAL_DAYS else 6
        recurrence = _Recurrence(
            start, duration, unit * interval, interval, frequency, sorted(set(days)), week_start
        )
        if recurrence.days and frequency != "hourly":
            recurrence.start = _first_selected(recurrence)
        rotation_start = _local(_text(raw, "rotation_start"))
        if rotation_start is not None and in_zone != zone:
            rotation_start = (
                localize(rotation_start, ZoneInfo(in_zone))
                .astimezone(ZoneInfo(zone))
                .replace(tzinfo=None)
            )
        if frequency == "daily" and recurrence.days:
            layers = _daily_by_day(recurrence, members, comments)
        else:
            layers = _periodic(recurrence, members, rotation_start, comments)
        if layers:
            layers[0].comments = comments + layers[0].comments
        return layers

    def _turns(self, groups: Sequence[Any], comments: list[str]) -> list[str]:
        """Return the person for each group's turn (its first user), with comments."""
        members = []
        for group in groups:
            people = self._people(group)
            if len(people) > 1:
                comments.append(
                    f"Grafana OnCall pages {', '.join(people)} together; here {people[0]} "
                    "alone (a policy level can page the others)"
                )
            if people:
                members.append(people[0])
            else:
                comments.append("a turn with no known user is left out: the others take it")
        return members

    def _people(self, ids: Sequence[Any]) -> list[str]:
        found = []
        for user_id in ids:
            name = self.user_names.by_key.get(user_id) if isinstance(user_id, str) else None
            if name:
                found.append(name)
        return found

    # Escalation chains ----------------------------------------------------------------

    def policies(self) -> None:
        steps: dict[str, list[Mapping[str, Any]]] = {}
        for raw in self.stack.steps:
            if isinstance(raw, dict):
                steps.setdefault(_text(raw, "escalation_chain_id"), []).append(raw)
        for raw in self.stack.chains:
            if not isinstance(raw, dict):
                continue
            chain_id, title = _text(raw, "id"), _text(raw, "name")
            ordered = sorted(steps.get(chain_id, []), key=lambda s: _int(s.get("position"), 0))
            policy = self._chain(title, chain_id, ordered)
            if policy is None:
                self.out.note(
                    "policies",
                    f"Grafana OnCall escalation chain {title!r} not carried over: none of its "
                    "steps notifies a user or an imported schedule",
                )
                continue
            self.out.policies.append(policy)

    def _chain(
        self, title: str, chain_id: str, steps: Sequence[Mapping[str, Any]]
    ) -> ImportedPolicy | None:
        comments: list[str] = []
        levels: list[ImportedLevel] = []
        waited = timedelta(0)  # since the last level
        leading = timedelta(0)
        current: list[str] | None = None  # targets of the level being gathered
        repeats = 0
        for step in steps:
            kind = _text(step, "type")
            if repeats:
                comments.append(f"its steps after repeat_escalation are not carried over ({kind})")
                continue
            if kind == "wait":
                waited += timedelta(seconds=max(_int(step.get("duration"), 0), 0))
                continue
            if kind == "repeat_escalation":
                repeats = GRAFANA_REPEATS
                continue
            targets = self._step_targets(step, kind, comments)
            if not targets:
                continue
            if current is not None and waited == timedelta(0):
                current += [t for t in targets if t not in current]
                continue
            if current is not None:
                levels.append(ImportedLevel(current, waited))
            elif waited:
                leading = waited
            current, waited = list(targets), timedelta(0)
        if current is None:
            return None
        if leading:
            comments.append(
                f"Grafana OnCall waits {format_duration(leading)} before its first "
                "notification; level 1 pages at once here"
            )
        if waited:
            last = waited
        elif repeats:
            last = SHORTEST_WAIT
            comments.append("Grafana OnCall repeats at once after the last step; here after 1m")
        else:
            last = LAST_LEVEL_WAIT
        levels.append(ImportedLevel(current, last))
        name = self.policy_names.take(title, key=chain_id, fallback="policy")
        return ImportedPolicy(name, levels, repeats, comments)

    def _step_targets(self, step: Mapping[str, Any], kind: str, comments: list[str]) -> list[str]:
        if kind == "notify_persons":
            return [f"user:{n}" for n in self._people(_list(step, "persons_to_notify"))]
        if kind == "notify_person_next_each_time":
            people = self._people(_list(step, "persons_to_notify_next_each_time"))
            if len(people) > 1:
                comments.append(
                    f"Grafana OnCall notifies one of {', '.join(people)} in turn; here all"
                )
            return [f"user:{n}" for n in people]
        if kind == "notify_on_call_from_schedule":
            schedule_id = _text(step, "notify_on_call_from_schedule")
            name = self.schedule_names.by_key.get(schedule_id)
            if name is None:
                comments.append(
                    f"a step notifies schedule {schedule_id}, which was not carried over"
                )
                return []
            return [f"schedule:{name}"]
        shown = {
            "notify_whole_channel": "notifies a Slack channel",
            "notify_user_group": "notifies a Slack user group",
            "notify_team_members": "notifies a team",
            "trigger_webhook": "triggers an outgoing webhook",
            "resolve": "resolves the alert group",
            "notify_if_time_from_to": "continues only within hours",
            "notify_if_num_alerts_in_window": "continues only past a number of alerts",
            "declare_incident": "declares an incident",
        }.get(kind, f"is a {kind!r} step")
        comments.append(f"a step that {shown} is not carried over")
        return []

    # Integrations and routes ----------------------------------------------------------

    def integrations(self) -> None:
        for raw in self.stack.integrations:
            if not isinstance(raw, dict):
                continue
            title, kind = _text(raw, "name"), _text(raw, "type")
            name = self.integration_names.take(
                title, kind, key=_text(raw, "id"), fallback="integration"
            )
            integration = ImportedIntegration(name, _integration_type(kind))
            if integration.type == "events_v2":
                integration.comments.append(
                    f"Grafana OnCall {kind or 'webhook'} integration {title!r}: its senders "
                    "post PagerDuty Events v2 (/v2/enqueue) here, with this token as routing_key"
                )
            else:
                integration.comments.append(
                    f"Grafana OnCall {kind} integration {title!r}: point its contact point at "
                    "/api/v1/integrations/alertmanager with this token"
                )
            self.out.integrations.append(integration)

    def routes(self) -> None:
        if not self.out.policies:
            fallback = self._fallback_policy()
            if fallback is None:
                return
            self.out.policies.append(fallback)
        defaults = []  # (integration title, policy name) of each default route
        for raw in self.stack.integrations:
            chain = _text(_dict(raw, "default_route"), "escalation_chain_id")
            policy = self.policy_names.by_key.get(chain)
            if policy:
                defaults.append((_text(raw, "name"), policy))
        chosen = defaults[0][1] if defaults else self.out.policies[0].name
        route = ImportedRoute(chosen)
        route.comments.append(
            "routes here match an incident's labels, whatever the integration: every "
            "incident goes to this policy"
        )
        for title, policy in defaults:
            if policy != chosen:
                route.comments.append(f"Grafana OnCall integration {title!r} escalated by {policy}")
        titles = {_text(i, "id"): _text(i, "name") for i in self.stack.integrations}
        for raw in self.stack.routes:
            if not isinstance(raw, dict) or raw.get("is_the_last_route") is True:
                continue
            policy = self.policy_names.by_key.get(_text(raw, "escalation_chain_id"), "no policy")
            of = titles.get(_text(raw, "integration_id"), "an integration")
            route.comments.append(
                f"Grafana OnCall route of {of!r} matching {_text(raw, 'routing_regex')!r} to "
                f"{policy}: write it as matchers"
            )
        self.out.routes.append(route)

    def _fallback_policy(self) -> ImportedPolicy | None:
        if self.out.schedules:
            target = f"schedule:{self.out.schedules[0].name}"
        elif self.out.users:
            target = f"user:{self.out.users[0].name}"
        else:
            return None
        policy = ImportedPolicy(
            self.policy_names.take("default"), [ImportedLevel([target], LAST_LEVEL_WAIT)]
        )
        policy.comments.append(
            "no Grafana OnCall escalation chain could be carried over: a policy to start"
        )
        return policy


def _first_selected(recurrence: _Recurrence) -> datetime:
    """Return the start moved to the first selected day, as Grafana OnCall moves it: to the
    first of `by_day` in week order from `week_start`, when the start's day is not one."""
    start = recurrence.start
    if start.weekday() in recurrence.days:
        return start
    in_week_order = [(recurrence.week_start + i) % 7 for i in range(7)]
    first = next(d for d in in_week_order if d in recurrence.days)
    return start + timedelta(days=(first - start.weekday()) % 7)


def _periodic(
    recurrence: _Recurrence,
    members: list[str],
    rotation_start: datetime | None,
    comments: list[str],
) -> list[ImportedLayer]:
    """Return the layers of events repeating every period (weekly ones on their days)."""
    period, duration, start = recurrence.period, recurrence.duration, recurrence.start
    handoff = start
    if recurrence.frequency == "weekly" and recurrence.days:
        # The turn changes at the week's first selected day; its events follow in the week.
        in_week_order = [(recurrence.week_start + i) % 7 for i in range(7)]
        first = next(d for d in in_week_order if d in recurrence.days)
        back = (in_week_order.index(start.weekday()) - in_week_order.index(first)) % 7
        handoff = start - timedelta(days=back)
    if rotation_start is not None and rotation_start > handoff:
        turns = math.ceil((rotation_start - handoff) / period)
        handoff += turns * period
    windows: list[tuple[int, int]] | None = None
    event_days = recurrence.days or [start.weekday()]
    if recurrence.frequency == "weekly" and (duration < period or len(event_days) > 1):
        if duration >= timedelta(weeks=1):
            windows = None
        else:
            opens = [minute_of_week(d, start.hour, start.minute) for d in event_days]
            windows = [(m, m + _minutes(duration)) for m in opens]
        if recurrence.interval > 1 and windows is not None:
            comments.append(
                f"Grafana OnCall has its events only every {recurrence.interval} weeks; here "
                "every week"
            )
    elif duration < period:
        if recurrence.frequency == "daily" and recurrence.interval == 1:
            opens = [minute_of_week(d, start.hour, start.minute) for d in range(7)]
            windows = [(m, m + _minutes(duration)) for m in opens]
        else:
            comments.append(
                f"its {format_duration(duration)} events every {format_duration(period)} "
                "are not a weekly pattern: here the whole period is on call"
            )
    if duration > period and windows is None:
        comments.append(
            "its events overlap the next turn in Grafana OnCall; here each turn ends at the next"
        )
    restrictions = weekly_restrictions(windows) if windows is not None else None
    if restrictions is None:
        return [ImportedLayer(list(members), period, handoff)]
    return [ImportedLayer(list(members), period, handoff, r) for r in restrictions]


def _daily_by_day(
    recurrence: _Recurrence, members: list[str], comments: list[str]
) -> list[ImportedLayer]:
    """Return one layer per selected weekday for `daily` with `by_day`: the turn moves on
    every `interval` selected days, so each weekday sees the turns in a weekly cycle."""
    start, days = recurrence.start, recurrence.days
    if recurrence.duration >= timedelta(days=1):
        comments.append("its events of a day or more overlap the next; here each ends at the next")
    length = min(_minutes(recurrence.duration), DAY - 1)
    per_turn = recurrence.interval * len(members)  # selected days before the turns repeat
    weeks = per_turn // math.gcd(len(days), per_turn)
    layers = []
    for offset in range(7):  # the first week: each selected day once, in order
        day = start + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        first = sum(1 for o in range(offset) if (start + timedelta(days=o)).weekday() in days)
        turns = [
            members[((first + n * len(days)) // recurrence.interval) % len(members)]
            for n in range(weeks)
        ]
        opens = minute_of_week(day.weekday(), start.hour, start.minute)
        for restrict in weekly_restrictions([(opens, opens + length)]) or []:
            layers.append(ImportedLayer(turns, timedelta(weeks=1), day, restrict))
    return layers


def _integration_type(kind: str) -> str:
    if kind in ("alertmanager", "legacy_alertmanager"):
        return "alertmanager"
    if kind in ("grafana", "grafana_alerting", "legacy_grafana_alerting"):
        return "grafana" if "grafana" in INTEGRATION_TYPES else "alertmanager"
    return "events_v2"


def _minutes(value: timedelta) -> int:
    return int(value.total_seconds() // 60)


def _local(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], LOCAL_FORMAT).replace(second=0)
    except ValueError:
        return None


def _instant(text: str) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _shown(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"


def _zone(zone: str, comments: list[str], field_name: str) -> str:
    if not zone:
        return "UTC"
    if zone.lower() == "etc/utc":
        return "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        comments.append(f"Grafana OnCall {field_name} {zone!r} is not a known time zone: UTC")
        return "UTC"
    return zone


def _is_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(
        at and local and domain and "@" not in domain and not any(c.isspace() for c in text)
    )


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _text(raw: Any, key: str) -> str:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value.strip() if isinstance(value, str) else ""


def _dict(raw: Any, key: str) -> Mapping[str, Any]:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value if isinstance(value, dict) else {}


def _list(raw: Any, key: str) -> list[Any]:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value if isinstance(value, list) else []
