"""`python app.py import opsgenie`: Opsgenie's REST API v2 into a directory file.

Reads users (`/v2/users`, each one's `/v2/users/{id}/contacts`), schedules with their
rotations (`/v2/schedules?expand=rotation`), escalations (`/v2/escalations`), integrations
(`/v2/integrations`) and heartbeats (`/v2/heartbeats`), and converts them (`convert`, pure)
into `ImportedDirectory`. Shapes as Opsgenie documents them (docs.opsgenie.com, and its
OpenAPI definitions in github.com/opsgenie/opsgenie-oas); an example of every answer is in
tests/data/imports/opsgenie/.

What maps, and how:
- A rotation is a layer: `hourly`/`daily`/`weekly` times `length`, handed off at local
  `startDate` in the schedule's time zone; its time restriction becomes the layer's
  `restrict`, cut into one layer per group of equal hours (`oncall.imports.windows`).
- An escalation is a policy: rules with the same `delay` form one level, a level escalates
  after the next rule's delay minus its own; `repeat.count` repeats it, `waitInterval` after
  the last rule.
- Email contacts are carried over; SMS, voice and mobile-app contacts, notification rules,
  teams, overrides and forwarding rules are not (a comment says so where it matters).
"""

from __future__ import annotations

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
    ImportedRestriction,
    ImportedRoute,
    ImportedSchedule,
    ImportedUser,
    Names,
)
from oncall.imports.windows import DAY, minute_of_week, weekly_restrictions

if TYPE_CHECKING:
    from oncall.imports.http import ApiClient, Params

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ROTATION_UNITS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
}
DELAY_UNITS = {
    "days": timedelta(days=1),
    "hours": timedelta(hours=1),
    "minutes": timedelta(minutes=1),
    "seconds": timedelta(seconds=1),
}
HEARTBEAT_UNITS = {
    "minutes": timedelta(minutes=1),
    "hours": timedelta(hours=1),
    "days": timedelta(days=1),
}
ADMIN_ROLES = ("owner", "admin")
# A level's escalate_after must be above zero; Opsgenie repeats at once after `waitInterval` 0.
SHORTEST_WAIT = timedelta(minutes=1)
# The last level's wait when the policy does not repeat: it only ends the policy.
LAST_LEVEL_WAIT = timedelta(minutes=5)
MAX_REPEAT = 100  # the directory's limit


def auth_headers(api_key: str) -> dict[str, str]:
    """Return the headers that authenticate with an Opsgenie API key."""
    return {"Authorization": f"GenieKey {api_key}", "Accept": "application/json"}


def paging_next(body: Any, _params: Params) -> str | None:
    """Return `paging.next` of an Opsgenie listing (an absolute URL), or None on the last."""
    paging = body.get("paging") if isinstance(body, dict) else None
    following = paging.get("next") if isinstance(paging, dict) else None
    return following if isinstance(following, str) and following else None


@dataclass
class Account:
    """What Opsgenie's API answered, as decoded JSON objects."""

    users: list[Any] = field(default_factory=list)
    contacts: dict[str, list[Any]] = field(default_factory=dict)  # by user id
    schedules: list[Any] = field(default_factory=list)
    escalations: list[Any] = field(default_factory=list)
    integrations: list[Any] = field(default_factory=list)
    heartbeats: list[Any] = field(default_factory=list)
    source: str = "Opsgenie"
    # Each schedule's timeline (the `data` of /v2/schedules/{id}/timeline), by schedule id.
    timelines: dict[str, Any] = field(default_factory=dict)


async def read_account(client: ApiClient, now: datetime) -> Account:
    """Return everything the import needs, read from Opsgenie's API; the timelines are of
    the two weeks from `now`."""
    users = await client.get_pages("/v2/users", "data", paging_next, {"limit": 100})
    contacts = {}
    for user in users:
        user_id = _text(user, "id")
        if user_id:
            answer = await client.get(f"/v2/users/{user_id}/contacts")
            contacts[user_id] = _list(answer, "data")
    schedules = _list(await client.get("/v2/schedules", {"expand": "rotation"}), "data")
    escalations = _list(await client.get("/v2/escalations"), "data")
    integrations = _list(await client.get("/v2/integrations"), "data")
    heartbeats_answer = await client.get("/v2/heartbeats")
    heartbeats = _list(_dict(heartbeats_answer, "data"), "heartbeats")
    timelines = {}
    when = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for schedule in schedules:
        schedule_id = _text(schedule, "id")
        if schedule_id:
            answer = await client.get(
                f"/v2/schedules/{schedule_id}/timeline",
                {"date": when, "interval": 2, "intervalUnit": "weeks"},
            )
            timelines[schedule_id] = _dict(answer, "data")
    return Account(
        users,
        contacts,
        schedules,
        escalations,
        integrations,
        heartbeats,
        f"Opsgenie ({client.base_url.rstrip('/')})",
        timelines,
    )


async def import_directory(client: ApiClient, now: datetime) -> ImportedDirectory:
    """Return the directory converted from the Opsgenie account `client` reads."""
    return convert(await read_account(client, now), now)


def convert(account: Account, now: datetime) -> ImportedDirectory:
    """Return the directory for what Opsgenie answered; `now` decides which rotations have
    ended. Pure."""
    out = ImportedDirectory(account.source)
    converter = _Converter(account, now, out)
    converter.users()
    converter.schedules()
    converter.policies()
    converter.integrations()
    converter.routes()
    return out


class _Converter:
    def __init__(self, account: Account, now: datetime, out: ImportedDirectory) -> None:
        self.account = account
        self.now = now
        self.out = out
        self.user_names = Names()
        self.schedule_names = Names()
        self.policy_names = Names()
        self.integration_names = Names()
        self.by_username: dict[str, str] = {}  # Opsgenie username → directory name

    # Users ----------------------------------------------------------------------------

    def users(self) -> None:
        for raw in self.account.users:
            if not isinstance(raw, dict):
                continue
            user_id = _text(raw, "id")
            username = _text(raw, "username")
            full_name = _text(raw, "fullName")
            name = self.user_names.take(
                username.partition("@")[0], full_name, username, key=user_id, fallback="user"
            )
            if username:
                self.by_username[username.lower()] = name
            user = ImportedUser(name, full_name or name)
            user.time_zone = self._zone(_text(raw, "timeZone"), user.comments, "timeZone")
            role = _text(_dict(raw, "role"), "name")
            user.role = "admin" if role.lower() in ADMIN_ROLES else "responder"
            if role and role.lower() not in (*ADMIN_ROLES, "user"):
                user.comments.append(f"Opsgenie role {role!r} (a custom role) became responder")
            if raw.get("blocked") is True:
                user.comments.append("blocked in Opsgenie")
            self._contacts(user, username, self.account.contacts.get(user_id, []))
            user.comments.append(
                "Opsgenie's notification rules are not imported: every contact is paged at "
                "once (add notification_rules to page some later)"
            )
            self.out.users.append(user)

    def _contacts(self, user: ImportedUser, username: str, contacts: Sequence[Any]) -> None:
        for raw in contacts:
            if not isinstance(raw, dict):
                continue
            method, to = _text(raw, "method"), _text(raw, "to")
            enabled = _dict(raw, "status").get("enabled", True) is not False
            if method == "email" and _is_email(to):
                contact = ImportedContact("email", to)
                if not enabled:
                    contact.comments.append("disabled in Opsgenie")
                user.contacts.append(contact)
            elif method in ("sms", "voice"):
                user.comments.append(
                    f"{method} contact {to} not carried over: no {method} channel here (an "
                    "apprise contact can reach a phone, e.g. through Twilio)"
                )
            elif method == "mobile":
                user.comments.append("Opsgenie mobile app contact not carried over")
            elif method:
                user.comments.append(f"{method} contact not carried over")
        if not any(c.type == "email" for c in user.contacts) and _is_email(username):
            contact = ImportedContact("email", username)
            contact.comments.append("the Opsgenie username: the user had no email contact")
            user.contacts.append(contact)

    # Schedules ------------------------------------------------------------------------

    def schedules(self) -> None:
        for raw in self.account.schedules:
            if not isinstance(raw, dict):
                continue
            schedule_id, title = _text(raw, "id"), _text(raw, "name")
            comments: list[str] = []
            zone = self._zone(_text(raw, "timezone"), comments, "timezone")
            layers: list[ImportedLayer] = []
            carried = 0
            for rotation in _list(raw, "rotations"):
                if isinstance(rotation, dict):
                    found = self._rotation(rotation, ZoneInfo(zone), comments)
                    carried += bool(found)
                    layers += found
            if raw.get("enabled") is False:
                comments.append("disabled in Opsgenie")
            if not layers:
                self.out.note(
                    "schedules",
                    f"Opsgenie schedule {title!r} not carried over: no rotation with users on call",
                )
                for comment in comments:
                    self.out.note("schedules", f"  {title}: {comment}")
                continue
            name = self.schedule_names.take(title, key=schedule_id, fallback="schedule")
            if carried > 1:
                comments.append(
                    "where rotations overlap, Opsgenie pages the on-call person of each; here "
                    "the last layer that has someone wins"
                )
            comments.append(
                "overrides are not imported: add them with the overrides API or web page"
            )
            schedule = ImportedSchedule(name, zone, layers, comments)
            timeline = self.account.timelines.get(schedule_id)
            if timeline:
                comments.append(self._agreement(schedule, timeline))
            self.out.schedules.append(schedule)

    def _agreement(self, schedule: ImportedSchedule, timeline: Mapping[str, Any]) -> str:
        start, end = _instant(_text(timeline, "startDate")), _instant(_text(timeline, "endDate"))
        spans = []
        for rotation in _list(_dict(timeline, "finalTimeline"), "rotations"):
            for period in _list(rotation, "periods"):
                begins = _instant(_text(period, "startDate"))
                ends = _instant(_text(period, "endDate"))
                recipient = _dict(period, "recipient")
                who = self._user(recipient) or _text(recipient, "name") or "someone"
                if begins is not None and ends is not None and begins < ends:
                    spans.append(Span(begins, ends, frozenset({who})))
        if start is None or end is None or start >= end:
            return "Opsgenie's timeline gave no period to check the import against"
        return agreement(schedule, spans, start, end, "Opsgenie")

    def _rotation(
        self, raw: Mapping[str, Any], zone: ZoneInfo, schedule_comments: list[str]
    ) -> list[ImportedLayer]:
        title = _text(raw, "name") or "a rotation"
        unit = ROTATION_UNITS.get(_text(raw, "type"))
        start = _instant(_text(raw, "startDate"))
        ends = _instant(_text(raw, "endDate"))
        if unit is None or start is None:
            schedule_comments.append(f"rotation {title!r} not carried over: no type or startDate")
            return []
        if ends is not None and ends <= self.now:
            schedule_comments.append(
                f"rotation {title!r} ended {_day(ends, zone)}: not carried over"
            )
            return []
        length = raw.get("length", 1)
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            length = 1
        comments: list[str] = [f"Opsgenie rotation {title!r}"]
        members = self._participants(_list(raw, "participants"), comments)
        if not members:
            schedule_comments.append(f"rotation {title!r} not carried over: it has no users")
            return []
        if ends is not None:
            comments.append(
                f"it ends {_day(ends, zone)} in Opsgenie; this layer goes on: remove it then"
            )
        handoff = start.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        restrictions = self._restrictions(_dict(raw, "timeRestriction"), comments)
        if restrictions is None:
            return [ImportedLayer(members, unit * length, handoff, None, comments)]
        if len(restrictions) > 1:
            comments.append(f"its time restriction is {len(restrictions)} layers here")
        return [
            ImportedLayer(members, unit * length, handoff, restrict, comments if i == 0 else [])
            for i, restrict in enumerate(restrictions)
        ]

    def _participants(self, participants: Sequence[Any], comments: list[str]) -> list[str]:
        members = []
        for raw in participants:
            if not isinstance(raw, dict):
                continue
            kind = _text(raw, "type")
            if kind == "user":
                name = self._user(raw)
                if name:
                    members.append(name)
                else:
                    comments.append(f"participant {_text(raw, 'username')!r}: no such user")
            elif kind == "none":
                comments.append(
                    "a `none` participant (nobody on call for its turn) is left out: the "
                    "others take its turns"
                )
            else:
                shown = _text(raw, "name") or _text(raw, "id")
                comments.append(f"{kind} participant {shown!r} not carried over: name users")
        return members

    def _restrictions(
        self, raw: Mapping[str, Any], comments: list[str]
    ) -> list[ImportedRestriction] | None:
        kind = _text(raw, "type")
        if not kind:
            return None
        windows: list[tuple[int, int]] = []
        if kind == "time-of-day":
            one = _dict(raw, "restriction")
            start, end = _clock(one, "start"), _clock(one, "end")
            if start is None or end is None:
                comments.append("its time restriction is unreadable: left out")
                return None
            if start == end:
                return None
            wraps = DAY if end < start else 0
            windows = [(d * DAY + start, d * DAY + end + wraps) for d in range(7)]
        elif kind == "weekday-and-time-of-day":
            for one in _list(raw, "restrictions"):
                window = _weekday_window(one) if isinstance(one, dict) else None
                if window is None:
                    comments.append("one of its time restrictions is unreadable: left out")
                    continue
                windows.append(window)
            if not windows:
                return None
        else:
            comments.append(f"its {kind!r} time restriction is not known here: left out")
            return None
        return weekly_restrictions(windows)

    # Escalations ----------------------------------------------------------------------

    def policies(self) -> None:
        for raw in self.account.escalations:
            if not isinstance(raw, dict):
                continue
            title = _text(raw, "name")
            policy = self._escalation(raw, title)
            if policy is None:
                self.out.note(
                    "policies",
                    f"Opsgenie escalation {title!r} not carried over: none of its rules "
                    "notifies a user or an imported schedule",
                )
                continue
            self.out.policies.append(policy)

    def _escalation(self, raw: Mapping[str, Any], title: str) -> ImportedPolicy | None:
        comments: list[str] = []
        steps: list[tuple[timedelta, str]] = []
        for rule in _list(raw, "rules"):
            if not isinstance(rule, dict):
                continue
            delay = _delay(_dict(rule, "delay"))
            target = self._recipient(rule, comments)
            if rule.get("condition") == "if-not-closed":
                comments.append(
                    "a rule escalates until the alert is closed in Opsgenie; here levels "
                    "escalate until it is acknowledged"
                )
            if target is not None:
                steps.append((delay, target))
        if not steps:
            return None
        steps.sort(key=lambda step: step[0])
        delays = sorted({delay for delay, _ in steps})
        if delays[0] > timedelta(0):
            comments.append(
                f"its first rule waits {format_duration(delays[0])} in Opsgenie; level 1 "
                "pages at once here"
            )
        repeat = _dict(raw, "repeat")
        count = repeat.get("count")
        repeats = count if isinstance(count, int) and not isinstance(count, bool) else 0
        wait = repeat.get("waitInterval")
        wait_minutes = wait if isinstance(wait, int) and not isinstance(wait, bool) else 0
        if repeats > MAX_REPEAT:
            comments.append(f"it repeats {repeats} times in Opsgenie; {MAX_REPEAT} here")
            repeats = MAX_REPEAT
        if repeats and wait_minutes <= 0:
            comments.append("Opsgenie repeats at once; here after a minute")
        if repeat.get("closeAlertAfterAll") is True:
            comments.append("Opsgenie closes the alert after the last repeat; here it stays open")
        last_wait = (
            max(timedelta(minutes=wait_minutes), SHORTEST_WAIT) if repeats else LAST_LEVEL_WAIT
        )
        levels = []
        for index, delay in enumerate(delays):
            notify = list(dict.fromkeys(t for d, t in steps if d == delay))
            after = delays[index + 1] - delay if index + 1 < len(delays) else last_wait
            levels.append(ImportedLevel(notify, after))
        name = self.policy_names.take(title, key=_text(raw, "id"), fallback="policy")
        return ImportedPolicy(name, levels, repeats, comments)

    def _recipient(self, rule: Mapping[str, Any], comments: list[str]) -> str | None:
        recipient = _dict(rule, "recipient")
        kind = _text(recipient, "type")
        notify_type = _text(rule, "notifyType") or "default"
        if kind == "user":
            name = self._user(recipient)
            if name:
                return f"user:{name}"
            comments.append(f"a rule names user {_text(recipient, 'username')!r}: no such user")
            return None
        if kind == "schedule":
            name = self.schedule_names.by_key.get(_text(recipient, "id"))
            shown = _text(recipient, "name") or _text(recipient, "id")
            if name is None:
                comments.append(f"a rule names schedule {shown!r}, which was not carried over")
                return None
            if notify_type in ("next", "previous"):
                comments.append(
                    f"a rule notifies the {notify_type} on-call user of {shown!r} in "
                    "Opsgenie; here whoever is on call now"
                )
            return f"schedule:{name}"
        shown = _text(recipient, "name") or _text(recipient, "id")
        comments.append(f"a rule notifies {kind} {shown!r}: not carried over (name users)")
        return None

    # Integrations and routes ----------------------------------------------------------

    def integrations(self) -> None:
        for raw in self.account.integrations:
            if not isinstance(raw, dict):
                continue
            title, kind = _text(raw, "name"), _text(raw, "type")
            if raw.get("enabled") is False:
                self.out.note(
                    "integrations", f"Opsgenie integration {title!r} ({kind}) is disabled: left out"
                )
                continue
            name = self.integration_names.take(title, kind, key=_text(raw, "id"), fallback="api")
            integration = ImportedIntegration(name, _integration_type(kind))
            if integration.type == "events_v2":
                integration.comments.append(
                    f"Opsgenie {kind or 'API'} integration: its senders post PagerDuty Events "
                    "v2 (/v2/enqueue) here, with this token as routing_key"
                )
            else:
                integration.comments.append(
                    f"Opsgenie {kind} integration: point its webhook at "
                    f"/api/v1/integrations/alertmanager with this token"
                )
            self.out.integrations.append(integration)
        for raw in self.account.heartbeats:
            if not isinstance(raw, dict):
                continue
            title = _text(raw, "name")
            interval = raw.get("interval")
            unit = HEARTBEAT_UNITS.get(_text(raw, "intervalUnit") or "minutes")
            if (
                isinstance(interval, bool)
                or not isinstance(interval, int)
                or interval < 1
                or not unit
            ):
                self.out.note(
                    "integrations", f"Opsgenie heartbeat {title!r}: no interval, left out"
                )
                continue
            if raw.get("enabled") is False:
                self.out.note("integrations", f"Opsgenie heartbeat {title!r} is disabled: left out")
                continue
            name = self.integration_names.take(title, fallback="heartbeat")
            integration = ImportedIntegration(name, "heartbeat", interval=unit * interval)
            integration.comments.append(
                f"Opsgenie heartbeat {title!r}: ping POST /api/v1/heartbeats/{name} with this token"
            )
            self.out.integrations.append(integration)

    def routes(self) -> None:
        if not self.out.policies:
            fallback = self._fallback_policy()
            if fallback is None:
                return
            self.out.policies.append(fallback)
        first = self.out.policies[0]
        route = ImportedRoute(first.name)
        route.comments.append(
            "Opsgenie sends an alert to an escalation by its team's routing rules, which "
            "are not imported: every incident goes to this policy"
        )
        others = [p.name for p in self.out.policies[1:]]
        if others:
            route.comments.append(
                f"add routes with matchers before this one for: {', '.join(others)}"
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
        policy.comments.append("no Opsgenie escalation could be carried over: a policy to start")
        return policy

    # Helpers --------------------------------------------------------------------------

    def _user(self, raw: Mapping[str, Any]) -> str | None:
        name = self.user_names.by_key.get(_text(raw, "id"))
        return name or self.by_username.get(_text(raw, "username").lower())

    def _zone(self, zone: str, comments: list[str], field_name: str) -> str:
        if not zone:
            return "UTC"
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            comments.append(f"Opsgenie {field_name} {zone!r} is not a known time zone: UTC")
            return "UTC"
        return zone


def _integration_type(kind: str) -> str:
    lowered = kind.lower()
    if lowered in ("prometheus", "alertmanager"):
        return "alertmanager"
    if lowered == "grafana":
        return "grafana" if "grafana" in INTEGRATION_TYPES else "alertmanager"
    return "events_v2"


def _weekday_window(raw: Mapping[str, Any]) -> tuple[int, int] | None:
    start_day, end_day = _text(raw, "startDay"), _text(raw, "endDay")
    start, end = _clock(raw, "start"), _clock(raw, "end")
    if start_day not in WEEKDAYS or end_day not in WEEKDAYS or start is None or end is None:
        return None
    return (
        minute_of_week(WEEKDAYS.index(start_day), 0, start),
        minute_of_week(WEEKDAYS.index(end_day), 0, end),
    )


def _clock(raw: Mapping[str, Any], prefix: str) -> int | None:
    """Return `{prefix}Hour`:`{prefix}Min` in minutes after midnight (24:00 is 1440)."""
    hour, minute = raw.get(f"{prefix}Hour"), raw.get(f"{prefix}Min", 0)
    if not isinstance(hour, int) or isinstance(hour, bool):
        return None
    if not isinstance(minute, int) or isinstance(minute, bool):
        return None
    if not (0 <= hour <= 24 and 0 <= minute < 60) or hour * 60 + minute > DAY:
        return None
    return hour * 60 + minute


def _delay(raw: Mapping[str, Any]) -> timedelta:
    amount = raw.get("timeAmount", 0)
    unit = DELAY_UNITS.get(_text(raw, "timeUnit") or "minutes", timedelta(minutes=1))
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        return timedelta(0)
    return unit * amount


def _instant(text: str) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _day(instant: datetime, zone: ZoneInfo) -> str:
    return f"{instant.astimezone(zone):%Y-%m-%d %H:%M}"


def _is_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(
        at and local and domain and "@" not in domain and not any(c.isspace() for c in text)
    )


def _text(raw: Any, key: str) -> str:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value.strip() if isinstance(value, str) else ""


def _dict(raw: Any, key: str) -> Mapping[str, Any]:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value if isinstance(value, dict) else {}


def _list(raw: Any, key: str) -> list[Any]:
    value = raw.get(key) if isinstance(raw, Mapping) else None
    return value if isinstance(value, list) else []
