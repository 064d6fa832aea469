"""`python app.py import pagerduty`: PagerDuty's REST API v2 into a directory file.

Reads users with their contact methods and notification rules (`GET /users`), schedules
(`GET /schedules`, then each one's `GET /schedules/{id}` with `since`/`until` for its layers
and its rendered final schedule), escalation policies (`GET /escalation_policies`) and
services with their integrations (`GET /services`), page by page (`offset`, `more`), and
converts them (`convert`, pure) into `ImportedDirectory`. The shapes are those of PagerDuty's
OpenAPI schema (github.com/PagerDuty/api-schema, reference/REST/openapiv3.json); an example
of every answer is in tests/data/imports/pagerduty/.

What maps, and how:
- A user keeps its e-mail contact methods and its notification rules that use them; phone,
  SMS, WhatsApp and push contact methods cannot be carried over (a comment names them).
- A schedule layer is a layer: handed off at `rotation_virtual_start` plus whole turns of
  `rotation_turn_length_seconds`, in local time of the schedule's zone (PagerDuty keeps
  handoffs at their local time across daylight-saving changes). Its restrictions become
  `restrict`, one layer per group of equal hours (`oncall.imports.windows`). A layer that
  has ended is left out. PagerDuty's layer with the highest number wins, as oncall's last
  layer does; which end of `schedule_layers` that is, is checked against the rendered final
  schedule, and the schedule's comment says whether the file agrees with it.
- An escalation policy is a policy: a rule is a level escalating after
  `escalation_delay_in_minutes`, `num_loops` is `repeat`.
- A service's Events API v2 integrations are `events_v2` integrations (Prometheus ones:
  `alertmanager`), its policy, urgency and acknowledgement timeout a route.
- Tokens are never copied: the file names `${VAR}`s for `python app.py init` to generate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oncall.durations import format_duration
from oncall.imports.agreement import Span, as_schedule, instants
from oncall.imports.directory_writer import (
    ImportedContact,
    ImportedDirectory,
    ImportedIntegration,
    ImportedLayer,
    ImportedLevel,
    ImportedPolicy,
    ImportedRestriction,
    ImportedRoute,
    ImportedRule,
    ImportedSchedule,
    ImportedUser,
    Names,
)
from oncall.imports.windows import DAY, WEEK, minute_of_week, weekly_restrictions
from oncall.schedules.rotation import Layer, handoff_at, on_call

if TYPE_CHECKING:
    from oncall.imports.http import ApiClient

PAGE = 100  # PagerDuty's largest `limit`
CHECK_SPAN = timedelta(days=28)  # of the final schedule the import is checked against
MAX_LISTED = 5  # overrides or differences named in one comment
ADMIN_ROLES = ("owner", "admin")
# ActiveSupport's names (the schema's `activesupport-time-zone`) of common zones; the API
# answers with IANA names, which are used as they are.
ACTIVE_SUPPORT_ZONES = {
    "UTC": "UTC",
    "London": "Europe/London",
    "Dublin": "Europe/Dublin",
    "Lisbon": "Europe/Lisbon",
    "Amsterdam": "Europe/Amsterdam",
    "Berlin": "Europe/Berlin",
    "Paris": "Europe/Paris",
    "Madrid": "Europe/Madrid",
    "Rome": "Europe/Rome",
    "Stockholm": "Europe/Stockholm",
    "Warsaw": "Europe/Warsaw",
    "Athens": "Europe/Athens",
    "Helsinki": "Europe/Helsinki",
    "Moscow": "Europe/Moscow",
    "Eastern Time (US & Canada)": "America/New_York",
    "Central Time (US & Canada)": "America/Chicago",
    "Mountain Time (US & Canada)": "America/Denver",
    "Arizona": "America/Phoenix",
    "Pacific Time (US & Canada)": "America/Los_Angeles",
    "Alaska": "America/Juneau",
    "Hawaii": "Pacific/Honolulu",
    "Brasilia": "America/Sao_Paulo",
    "Mumbai": "Asia/Kolkata",
    "New Delhi": "Asia/Kolkata",
    "Singapore": "Asia/Singapore",
    "Hong Kong": "Asia/Hong_Kong",
    "Tokyo": "Asia/Tokyo",
    "Seoul": "Asia/Seoul",
    "Sydney": "Australia/Sydney",
    "Melbourne": "Australia/Melbourne",
    "Auckland": "Pacific/Auckland",
}
# Contact method types oncall cannot page, and what to use instead.
UNSUPPORTED_CONTACTS = {
    "phone_contact_method": "oncall does not place calls: an apprise contact with an SMS "
    "or voice service URL can page it",
    "sms_contact_method": "oncall does not send text messages itself: an apprise contact "
    "with an SMS service URL can page it",
    "whatsapp_contact_method": "oncall does not send WhatsApp messages: an apprise contact "
    "can page it",
    "push_notification_contact_method": "oncall has no mobile app: an apprise contact "
    "(ntfy, Pushover) can page a phone",
}
URGENCY_RULES = {"high": "high", "low": "low"}
ROUTE_URGENCY = {"high": "high", "low": "low", "severity_based": "by_severity"}
PROMETHEUS_VENDORS = ("prometheus", "alertmanager")


def auth_headers(token: str) -> dict[str, str]:
    """Return the headers of PagerDuty's REST API v2 for an API token."""
    return {
        "Authorization": f"Token token={token}",
        "Accept": "application/vnd.pagerduty+json;version=2",
    }


@dataclass(frozen=True)
class Snapshot:
    """What the API answered, as decoded JSON: the input of `convert`."""

    base_url: str
    users: list[dict[str, Any]]
    schedules: list[dict[str, Any]]  # each as GET /schedules/{id} answers, since/until set
    policies: list[dict[str, Any]]
    services: list[dict[str, Any]]


async def read(client: ApiClient, now: datetime) -> Snapshot:
    """Return everything the import needs from the API behind `client`.

    `include[]` asks for full contact methods, notification rules and integrations in the
    listings; where an answer still holds references (the schema's declared shape), each
    is read from its own endpoint."""
    from oncall.imports.http import offset_pages

    users = await client.get_pages(
        "users",
        "users",
        offset_pages,
        {"limit": PAGE, "include[]": ["contact_methods", "notification_rules"]},
    )
    for user in _objects(users):
        path = f"users/{_segment(user.get('id'))}"
        if any(_is_reference(m) for m in user.get("contact_methods") or []):
            body = await client.get(f"{path}/contact_methods")
            user["contact_methods"] = _listed(body, "contact_methods")
        if any(_is_reference(r) for r in user.get("notification_rules") or []):
            body = await client.get(f"{path}/notification_rules", {"urgency": "all"})
            user["notification_rules"] = _listed(body, "notification_rules")
    listed = await client.get_pages("schedules", "schedules", offset_pages, {"limit": PAGE})
    window = {"since": _iso(now), "until": _iso(now + CHECK_SPAN)}
    schedules = []
    for item in _objects(listed):
        body = await client.get(f"schedules/{_segment(item.get('id'))}", window)
        if isinstance(body, dict) and isinstance(body.get("schedule"), dict):
            schedules.append(body["schedule"])
    policies = await client.get_pages(
        "escalation_policies", "escalation_policies", offset_pages, {"limit": PAGE}
    )
    services = await client.get_pages(
        "services", "services", offset_pages, {"limit": PAGE, "include[]": ["integrations"]}
    )
    for service in _objects(services):
        found = []
        for item in _objects(service.get("integrations") or []):
            kind = str(item.get("type", "")).removesuffix("_reference")
            if _is_reference(item) and kind == "events_api_v2_inbound_integration":
                path = f"services/{_segment(service.get('id'))}/integrations"
                body = await client.get(f"{path}/{_segment(item.get('id'))}")
                item = _dict(body, "integration") if isinstance(body, dict) else item
            found.append(item)
        service["integrations"] = found
    return Snapshot(client.base_url.rstrip("/"), users, schedules, policies, services)


def _segment(value: Any) -> str:
    """Return an id as one path segment."""
    return quote(str(value), safe="")


def _is_reference(item: Any) -> bool:
    return isinstance(item, dict) and str(item.get("type", "")).endswith("_reference")


def _listed(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, list) else []


async def import_directory(client: ApiClient, now: datetime) -> ImportedDirectory:
    """Return the directory imported from the PagerDuty account behind `client`."""
    return convert(await read(client, now), now)


def convert(snapshot: Snapshot, now: datetime) -> ImportedDirectory:
    """Return the directory for what PagerDuty answered; `now` decides which layers have
    ended and which overrides are upcoming."""
    directory = ImportedDirectory(source=f"PagerDuty ({snapshot.base_url})")
    users = Names()
    for raw in _objects(snapshot.users):
        directory.users.append(_user(raw, users))
    schedules = Names()
    for raw in _objects(snapshot.schedules):
        schedule = _schedule(raw, users.by_key, schedules, now)
        if schedule.layers:
            directory.schedules.append(schedule)
        else:
            directory.note(
                "schedules",
                f"PagerDuty schedule {_label(raw)} has no layer that can be carried over: "
                + "; ".join(schedule.comments),
            )
    targets = {
        **{f"user:{key}": f"user:{name}" for key, name in users.by_key.items()},
        **{
            f"schedule:{key}": f"schedule:{name}"
            for key, name in schedules.by_key.items()
            if name in {s.name for s in directory.schedules}
        },
    }
    policies = Names()
    for raw in _objects(snapshot.policies):
        policy = _policy(raw, targets, policies)
        if policy.levels:
            directory.policies.append(policy)
        else:
            directory.note(
                "policies",
                f"PagerDuty escalation policy {_label(raw)} has no rule whose targets were "
                "carried over: left out",
            )
    kept = {p.name for p in directory.policies}
    policy_names = {k: v for k, v in policies.by_key.items() if v in kept}
    _services(directory, _objects(snapshot.services), policy_names)
    return directory


def _objects(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)]


def _dict(raw: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Return `raw[key]` when it is an object, else an empty one."""
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def _label(raw: Mapping[str, Any]) -> str:
    """Return how a comment names a PagerDuty object: its name (or summary) and id."""
    name = raw.get("name") or raw.get("summary") or ""
    return f"{str(name)!r} ({raw.get('id', '?')})" if name else str(raw.get("id", "?"))


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _instant(value: Any) -> datetime | None:
    """Return an ISO 8601 time with an offset as an aware datetime, else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def zone_name(value: Any) -> str | None:
    """Return the IANA zone of a PagerDuty time zone (IANA or ActiveSupport), or None."""
    if not isinstance(value, str) or not value:
        return None
    candidate = ACTIVE_SUPPORT_ZONES.get(value, value)
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    return candidate


def _user(raw: dict[str, Any], names: Names) -> ImportedUser:
    email = raw.get("email") if isinstance(raw.get("email"), str) else ""
    name = names.take(
        (email or "").partition("@")[0],
        raw.get("name"),
        key=str(raw.get("id", "")),
        fallback="user",
    )
    user = ImportedUser(name, str(raw.get("name") or ""))
    user.comments.append(f"PagerDuty user {_label(raw)}")
    zone = zone_name(raw.get("time_zone"))
    if zone is None and raw.get("time_zone"):
        user.comments.append(f"time zone {raw.get('time_zone')!r} is not known here: UTC")
    elif zone is None:
        user.comments.append("no time zone of its own (PagerDuty's: the account's): UTC")
    user.time_zone = zone or "UTC"
    role = str(raw.get("role") or "user")
    user.role = "admin" if role in ADMIN_ROLES else "responder"
    if role not in (*ADMIN_ROLES, "user", "limited_user"):
        user.comments.append(f"PagerDuty role {role!r}: oncall has only responder and admin")
    index_of: dict[str, int] = {}
    for method in raw.get("contact_methods") or []:
        if not isinstance(method, dict):
            continue
        kind = str(method.get("type", "")).removesuffix("_reference")
        label = f" ({method['label']})" if method.get("label") else ""
        if kind == "email_contact_method" and isinstance(method.get("address"), str):
            index_of[str(method.get("id"))] = len(user.contacts)
            user.contacts.append(ImportedContact("email", method["address"]))
        elif kind in UNSUPPORTED_CONTACTS:
            user.comments.append(
                f"{kind.removesuffix('_contact_method')}{label} {_address(method)}: "
                f"{UNSUPPORTED_CONTACTS[kind]}".replace("  ", " ")
            )
        else:
            user.comments.append(f"contact method {method.get('id')}{label} was not readable")
    if not user.contacts and email:
        user.contacts.append(
            ImportedContact(
                "email", email, comments=["the login e-mail (no e-mail contact method)"]
            )
        )
    _rules(user, raw.get("notification_rules") or [], index_of)
    return user


def _address(method: Mapping[str, Any]) -> str:
    address = str(method.get("address") or "")
    code = method.get("country_code")
    return f"+{code} {address}" if isinstance(code, int) and address else address


def _rules(user: ImportedUser, rules: Sequence[Any], index_of: Mapping[str, int]) -> None:
    """Carry over the rules that page an e-mail contact; each contact once per urgency."""
    found: dict[str, list[ImportedRule]] = {}
    for rule in rules:
        if not isinstance(rule, dict) or rule.get("urgency") not in URGENCY_RULES:
            continue
        method = _dict(rule, "contact_method")
        delay = rule.get("start_delay_in_minutes")
        if not isinstance(delay, int) or delay < 0:
            continue
        urgency = URGENCY_RULES[rule["urgency"]]
        index = index_of.get(str(method.get("id")))
        kind = str(method.get("type", "contact method")).removesuffix("_reference")
        what = f"{urgency}-urgency rule after {delay}m"
        if index is None:
            user.comments.append(f"{what} pages a {kind.replace('_', ' ')}: not carried over")
            continue
        listed = found.setdefault(urgency, [])
        if any(r.contact == index for r in listed):
            user.comments.append(f"{what} pages the same e-mail again: oncall pages it once")
            continue
        listed.append(ImportedRule(index, timedelta(minutes=delay)))
    for listed in found.values():
        listed.sort(key=lambda r: r.after)
    user.rules = found


def _schedule(
    raw: dict[str, Any], users: Mapping[str, str], names: Names, now: datetime
) -> ImportedSchedule:
    name = names.take(raw.get("name"), key=str(raw.get("id", "")), fallback="schedule")
    zone = zone_name(raw.get("time_zone"))
    schedule = ImportedSchedule(name, zone or "UTC")
    schedule.comments.append(f"PagerDuty schedule {_label(raw)}")
    if zone is None:
        schedule.comments.append(f"time zone {raw.get('time_zone')!r} is not known here: UTC")
    raw_layers = [layer for layer in raw.get("schedule_layers") or [] if isinstance(layer, dict)]
    # GET answers with the highest layer (the one that wins) first: reversed, it is in
    # oncall's order. Both orders are checked against the final schedule.
    orders = [raw_layers[::-1], raw_layers] if len(raw_layers) > 1 else [raw_layers]
    entries = _entries(raw.get("final_schedule"))
    overrides = _entries(raw.get("overrides_subschedule"))
    spans = [
        Span(start, end, frozenset({users.get(user, f"PagerDuty user {user}")}))
        for start, end, user in entries
    ]
    best: tuple[list[ImportedLayer], list[str], Check] | None = None
    for order in orders:
        layers: list[ImportedLayer] = []
        notes: list[str] = []
        for index, item in enumerate(order):
            converted, said = _layers(item, schedule.time_zone, users, now)
            layers += converted
            notes += [f"layer {_layer_name(item, index)}: {text}" for text in said]
        candidate = ImportedSchedule(schedule.name, schedule.time_zone, layers)
        check = check_layers(candidate, spans, [(s, e) for s, e, _ in overrides])
        if best is None or len(check.differences) < len(best[2].differences):
            best = (layers, notes, check)
    assert best is not None
    schedule.layers, notes, check = best
    schedule.comments += notes
    schedule.comments += check.describe()
    schedule.comments += _overrides(overrides, users, now)
    return schedule


def _layer_name(raw: Mapping[str, Any], index: int) -> str:
    return repr(str(raw["name"])) if raw.get("name") else f"#{index + 1}"


def _entries(sub: Any) -> list[tuple[datetime, datetime, str]]:
    """Return a subschedule's rendered entries as (start, end, user id), in time order."""
    if not isinstance(sub, dict):
        return []
    found = []
    for entry in sub.get("rendered_schedule_entries") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("user"), dict):
            continue
        start, end = _instant(entry.get("start")), _instant(entry.get("end"))
        if start is not None and end is not None and start < end:
            found.append((start, end, str(entry["user"].get("id"))))
    return sorted(found)


def _layers(
    raw: dict[str, Any], zone_name_: str, users: Mapping[str, str], now: datetime
) -> tuple[list[ImportedLayer], list[str]]:
    """Return the layers for one PagerDuty layer (one per restriction group) and comments."""
    comments: list[str] = []
    end = _instant(raw.get("end"))
    if end is not None and end <= now:
        return [], [f"ended at {_iso(end)}: left out"]
    members = []
    for item in raw.get("users") or []:
        ref = item.get("user") if isinstance(item, dict) else None
        key = str(ref.get("id")) if isinstance(ref, dict) else ""
        if key in users:
            members.append(users[key])
        else:
            comments.append(f"user {key or '?'} is not among the imported users: left out")
    turn_seconds = raw.get("rotation_turn_length_seconds")
    virtual_start = _instant(raw.get("rotation_virtual_start"))
    start = _instant(raw.get("start")) or virtual_start
    if not members or not isinstance(turn_seconds, int) or turn_seconds <= 0:
        return [], [*comments, "no members or no turn length: left out"]
    if virtual_start is None or start is None:
        return [], [*comments, "no rotation_virtual_start: left out"]
    zone = ZoneInfo(zone_name_)
    turn = timedelta(seconds=turn_seconds)
    anchor = virtual_start.astimezone(zone).replace(tzinfo=None)
    if anchor.second or anchor.microsecond:
        comments.append(f"handoffs at {anchor:%H:%M:%S}: here to the minute")
        anchor = anchor.replace(second=0, microsecond=0)
    # oncall's layer begins at a handoff: the one of the turn PagerDuty's layer starts in,
    # with the members turned so that the same person has that turn.
    probe = Layer(tuple(members), turn, anchor)
    k = (start.astimezone(zone).replace(tzinfo=None) - anchor) // turn
    while handoff_at(probe, zone, k) > start:
        k -= 1
    while handoff_at(probe, zone, k + 1) <= start:
        k += 1
    if handoff_at(probe, zone, k) != start and start > now:
        comments.append(
            f"starts at {_iso(start)}, inside a turn: here at that turn's handoff, "
            f"{_iso(handoff_at(probe, zone, k))}"
        )
    if end is not None:
        comments.append(f"PagerDuty ends it at {_iso(end)}: oncall's layers do not end")
    shift = k % len(members)
    ordered = members[shift:] + members[:shift]
    handoff = anchor + k * turn
    restricts, said = restriction_groups(raw.get("restrictions") or [])
    comments += said
    if restricts is None:
        return [ImportedLayer(ordered, turn, handoff, None)], comments
    if len(restricts) > 1:
        comments.append(f"its restrictions are {len(restricts)} layers here, one per hours")
    return [ImportedLayer(list(ordered), turn, handoff, r) for r in restricts], comments


def restriction_groups(
    restrictions: Sequence[Any],
) -> tuple[list[ImportedRestriction] | None, list[str]]:
    """Return the directory restrictions covering PagerDuty's `restrictions` (None: no
    restriction) and comments on what was rounded or not understood."""
    windows: list[tuple[int, int]] = []
    comments: list[str] = []
    for item in restrictions:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        text = str(item.get("start_time_of_day") or "")
        duration = item.get("duration_seconds")
        try:
            hour, minute, *rest = (int(part) for part in text.split(":"))
        except ValueError:
            hour = minute = -1
            rest = []
        if not (0 <= hour < 24 and 0 <= minute < 60) or not isinstance(duration, int):
            comments.append(f"restriction {item!r} is not understood: left out")
            continue
        if any(rest) or duration % 60:
            comments.append(f"restriction from {text} for {duration}s: here to the minute")
        length = duration // 60
        if length <= 0:
            continue
        if kind == "daily_restriction":
            if length >= DAY:
                return None, comments  # every hour of every day
            starts = [minute_of_week(day, hour, minute) for day in range(7)]
            windows += [(begin, begin + length) for begin in starts]
        elif kind == "weekly_restriction" and item.get("start_day_of_week") in range(1, 8):
            if length >= WEEK:
                return None, comments
            begin = minute_of_week(int(item["start_day_of_week"]) - 1, hour, minute)
            windows.append((begin, begin + length))
        else:
            comments.append(f"restriction {item!r} is not understood: left out")
    if not windows:
        return None, comments
    return weekly_restrictions(windows), comments


@dataclass(frozen=True)
class Check:
    """How imported layers compare with PagerDuty's rendered final schedule."""

    zone: str
    period: tuple[datetime, datetime] | None  # of PagerDuty's entries
    checked: list[datetime]  # the instants compared
    differences: list[tuple[datetime, str, str | None]]  # (at, PagerDuty's, ours)

    def describe(self) -> list[str]:
        if not self.checked or self.period is None:
            return ["PagerDuty rendered no final schedule to check this one against"]
        zone = ZoneInfo(self.zone)
        start, end = (instant.astimezone(zone) for instant in self.period)
        period = f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
        said = f"checked against PagerDuty's final schedule from {period}"
        if not self.differences:
            return [f"{said} at {len(self.checked)} instants (overrides aside): agrees"]
        listed = "; ".join(
            f"{at.astimezone(zone):%Y-%m-%d %H:%M} PagerDuty names {theirs}, "
            f"here {ours or 'nobody'}"
            for at, theirs, ours in self.differences[:MAX_LISTED]
        )
        return [
            f"{said}: disagrees at {len(self.differences)} of {len(self.checked)} instants, "
            f"e.g. {listed}"
        ]


def check_layers(
    imported: ImportedSchedule,
    spans: Sequence[Span],
    overrides: Sequence[tuple[datetime, datetime]],
) -> Check:
    """Compare who `imported` puts on call with PagerDuty's final schedule `spans` at the
    instants `agreement.instants` picks, except where an override (not carried over) is."""
    schedule = as_schedule(imported)
    start = min((span.start for span in spans), default=None)
    end = max((span.end for span in spans), default=None)
    checked = []
    if start is not None and end is not None:
        checked = [
            at for at in instants(spans, start, end) if not any(s <= at < e for s, e in overrides)
        ]
    differences = []
    for at in checked:
        expected = frozenset().union(*(s.people for s in spans if s.start <= at < s.end))
        found = on_call(schedule, (), at)
        if (found is None and expected) or (found is not None and found not in expected):
            differences.append((at, ", ".join(sorted(expected)) or "nobody", found))
    period = (start, end) if start is not None and end is not None else None
    return Check(imported.time_zone, period, checked, differences)


def _overrides(
    overrides: Sequence[tuple[datetime, datetime, str]], users: Mapping[str, str], now: datetime
) -> list[str]:
    upcoming = [(s, e, u) for s, e, u in overrides if e > now]
    if not upcoming:
        return []
    listed = ", ".join(
        f"{users.get(u, u)} {_iso(s)} to {_iso(e)}" for s, e, u in upcoming[:MAX_LISTED]
    )
    more = f" and {len(upcoming) - MAX_LISTED} more" if len(upcoming) > MAX_LISTED else ""
    return [
        f"PagerDuty's overrides ({len(upcoming)}) are not carried over (oncall keeps them "
        f"in its database: add them again on the schedule's page or with POST "
        f"/api/v1/schedules/NAME/overrides): {listed}{more}"
    ]


def _policy(raw: dict[str, Any], targets: Mapping[str, str], names: Names) -> ImportedPolicy:
    name = names.take(raw.get("name"), key=str(raw.get("id", "")), fallback="policy")
    policy = ImportedPolicy(name)
    policy.comments.append(f"PagerDuty escalation policy {_label(raw)}")
    loops = raw.get("num_loops")
    policy.repeat = min(loops, 100) if isinstance(loops, int) and loops > 0 else 0
    for index, rule in enumerate(raw.get("escalation_rules") or []):
        if not isinstance(rule, dict):
            continue
        level = ImportedLevel([], timedelta(minutes=1))
        delay = rule.get("escalation_delay_in_minutes")
        if isinstance(delay, int) and delay > 0:
            level.escalate_after = timedelta(minutes=delay)
        else:
            level.comments.append(f"escalation delay {delay!r}: 1m")
        for target in rule.get("targets") or []:
            if not isinstance(target, dict):
                continue
            kind = str(target.get("type", "")).removesuffix("_reference")
            found = targets.get(f"{kind}:{target.get('id')}")
            if found is None:
                level.comments.append(
                    f"target {kind or '?'} {_label(target)} was not carried over: left out"
                )
            elif found not in level.notify:
                level.notify.append(found)
        if rule.get("escalation_rule_assignment_strategy") == "round_robin":
            level.comments.append("round robin in PagerDuty: oncall pages every target")
        if level.notify:
            policy.levels.append(level)
        else:
            policy.comments += [f"rule {index + 1} has no target left: left out", *level.comments]
    return policy


def _services(
    directory: ImportedDirectory, services: list[dict[str, Any]], policies: Mapping[str, str]
) -> None:
    """Add each service's integrations, and the routes to its policy."""
    names = Names()  # of services, as routes' matchers name them
    integration_names = Names()
    routes: list[tuple[str, ImportedRoute]] = []  # (service name, its route)
    for raw in services:
        label = f"PagerDuty service {_label(raw)}"
        if raw.get("status") == "disabled":
            directory.note("integrations", f"{label} is disabled: left out")
            continue
        ref = _dict(raw, "escalation_policy")
        policy = policies.get(str(ref.get("id")))
        if policy is None:
            directory.note(
                "integrations", f"{label}: its escalation policy was not carried over: left out"
            )
            continue
        service = names.take(raw.get("name"), key=str(raw.get("id", "")), fallback="service")
        integrations = [i for i in raw.get("integrations") or [] if isinstance(i, dict)]
        carried = []
        for item in integrations:
            kind = str(item.get("type", "")).removesuffix("_reference")
            vendor = _dict(item, "vendor")
            vendor_name = str(vendor.get("summary") or vendor.get("name") or "")
            what = f"{label}, integration {_label(item)}"
            if kind == "events_api_v2_inbound_integration":
                carried.append((item, vendor_name))
            else:
                directory.note("integrations", f"{what} ({kind}): {_unsupported(kind)}")
        for item, vendor_name in carried:
            base = (
                service
                if len(carried) == 1
                else f"{service}-{item.get('name') or item.get('summary')}"
            )
            integration_name = integration_names.take(base, fallback="integration")
            comments = [f"{label}, integration {_label(item)}"]
            if vendor_name.lower() in PROMETHEUS_VENDORS:
                comments.append(
                    "from Prometheus: in Alertmanager, replace its pagerduty_configs with a "
                    "webhook_configs receiver posting to /api/v1/integrations/alertmanager"
                )
                directory.integrations.append(
                    ImportedIntegration(integration_name, "alertmanager", comments=comments)
                )
            else:
                comments.append(
                    "senders post Events v2 to /v2/enqueue with this token as routing_key"
                )
                directory.integrations.append(
                    ImportedIntegration(integration_name, "events_v2", comments=comments)
                )
        routes.append((service, _route(raw, policy, label)))
    _routes(directory, routes)


def _unsupported(kind: str) -> str:
    if kind == "generic_email_inbound_integration":
        return "oncall does not take alerts by e-mail: left out"
    if kind == "generic_events_api_inbound_integration":
        return "Events API v1: send Events v2 to /v2/enqueue instead; left out"
    return "oncall has no such integration: send Events v2 or Alertmanager webhooks; left out"


def _route(raw: dict[str, Any], policy: str, label: str) -> ImportedRoute:
    route = ImportedRoute(policy, comments=[label])
    rule = _dict(raw, "incident_urgency_rule")
    kind = rule.get("type")
    if kind in ("constant", None) and rule.get("urgency") in ROUTE_URGENCY:
        route.urgency = ROUTE_URGENCY[str(rule["urgency"])]
    elif kind == "use_support_hours":
        during = rule.get("during_support_hours")
        urgency = during.get("urgency") if isinstance(during, dict) else None
        route.urgency = ROUTE_URGENCY.get(str(urgency), "high")
        route.comments.append(
            f"urgency by support hours in PagerDuty: oncall has none, so always "
            f"{route.urgency} (the urgency during support hours)"
        )
    timeout = raw.get("acknowledgement_timeout")
    if isinstance(timeout, int) and timeout > 0:
        route.ack_timeout = timedelta(seconds=timeout)
    resolve = raw.get("auto_resolve_timeout")
    if isinstance(resolve, int) and resolve > 0:
        after = format_duration(timedelta(seconds=resolve))
        route.comments.append(
            f"PagerDuty resolves its incidents after {after} open: oncall does not"
        )
    return route


def _routes(directory: ImportedDirectory, routes: list[tuple[str, ImportedRoute]]) -> None:
    """One catch-all route when every service routes alike, else a route per service
    matching a `service` label and a catch-all for the most common route."""
    if not routes:
        if directory.policies:
            directory.routes.append(
                ImportedRoute(
                    directory.policies[0].name,
                    comments=["no PagerDuty service was carried over: everything goes here"],
                )
            )
        return

    def key(route: ImportedRoute) -> tuple[str, str, timedelta | None]:
        return route.policy, route.urgency, route.ack_timeout

    kinds = [key(route) for _, route in routes]
    common = max(kinds, key=kinds.count)
    if len(set(kinds)) == 1:
        directory.routes.append(_merged(routes, "every PagerDuty service routes alike:"))
        return
    directory.note(
        "routes",
        "PagerDuty picks a service by the integration an event arrives on; oncall routes "
        'by the alert\'s labels: these routes expect a label service="NAME" (add it in '
        "Alertmanager, or edit the matchers)",
    )
    for service, route in routes:
        if key(route) != common:
            route.match = [f'service="{service}"']
            directory.routes.append(route)
    group = [(name, route) for name, route in routes if key(route) == common]
    directory.routes.append(_merged(group, "everything else, as"))


def _merged(group: list[tuple[str, ImportedRoute]], title: str) -> ImportedRoute:
    """Return one catch-all route for services that route alike, with their comments."""
    first = group[0][1]
    comments = [f"{title} {', '.join(name for name, _ in group)}"]
    for name, route in group:
        comments += [f"{name}: {text}" for text in route.comments[1:]]
    return ImportedRoute(
        first.policy, urgency=first.urgency, ack_timeout=first.ack_timeout, comments=comments
    )
