"""The lint: each warning from a directory that earns it, with its path (gaps with their
local start and end, across daylight-saving changes too), and none from a clean one."""

from __future__ import annotations

import dataclasses
import pathlib
from datetime import UTC, datetime, timedelta

import pytest

from oncall.directory.coverage import common_gaps, schedule_gaps
from oncall.directory.lint import Warning, lint
from oncall.directory.model import Directory, NotificationRule
from oncall.directory.parse import parse_directory
from oncall.schedules.overrides import Override
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, BOB_TOKEN, T0

EXAMPLE = pathlib.Path(__file__).parent.parent.parent / "oncall.example.yaml"
HEARTBEAT_TOKEN = "heartbeat-token-0123456789abcdefghijklmnop"
EVENTS_TOKEN = "events-token-0123456789abcdefghijklmnopqrs"

# A complete directory: every kind of integration routed, every user reachable at both
# urgencies, a schedule with someone on call at every instant, each policy and schedule used.
INTEGRATIONS = f"""\
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: backup, type: heartbeat, token: "{HEARTBEAT_TOKEN}", interval: 1h}}
  - {{name: pd, type: events_v2, token: "{EVENTS_TOKEN}"}}
"""
USERS = f"""\
  - name: alice
    time_zone: Europe/Berlin
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: email, to: alice@example.com}}
      - {{type: webhook, name: hook, url: "https://hooks.example.com/alice"}}
    notification_rules:
      high: [{{contact: hook, after: 0m}}, {{contact: email, after: 5m}}]
      low: [{{contact: email, after: 0m}}]
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: email, to: bob@example.com}}]}}
"""
SCHEDULES = """\
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {members: [alice, bob], rotation: 1w, handoff: "2026-01-05 09:00"}
      - members: [bob]
        rotation: 1d
        handoff: "2026-01-05 18:00"
        restrict: {days: [sat, sun], from: "10:00", to: "18:00"}
"""
POLICIES = """\
  - name: default
    levels:
      - {notify: ["schedule:primary"], escalate_after: 5m}
      - {notify: ["user:bob"], escalate_after: 10m}
  - name: backups
    levels:
      - {notify: ["user:alice", "schedule:primary"], escalate_after: 5m}
"""
ROUTES = """\
  - {match: ['heartbeat="backup"'], policy: backups}
  - {match: ['severity="critical"', 'team=~"db|infra"'], policy: default}
  - {match: ['source=~"db.*"'], policy: default}
  - {policy: default}
"""
# Weekdays 09:00 to 17:00 in Berlin: nobody on call on weekday nights and weekends.
OFFICE_HOURS = """\
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - members: [alice, bob]
        rotation: 1w
        handoff: "2026-01-05 09:00"
        restrict: {days: [mon, tue, wed, thu, fri], from: "09:00", to: "17:00"}
"""


def make_directory(
    *,
    integrations: str = INTEGRATIONS,
    users: str = USERS,
    schedules: str = SCHEDULES,
    policies: str = POLICIES,
    routes: str = ROUTES,
) -> Directory:
    """Return the complete directory with the sections given (YAML list items) instead."""
    return parse_directory(
        f"integrations:\n{integrations}users:\n{users}schedules:\n{schedules}"
        f"policies:\n{policies}routes:\n{routes}",
        {},
        "oncall.yaml",
    )


def daily(zone: str, start: str, end: str) -> str:
    """Return schedules with one, `primary`: alice on call every day from local `start`
    to local `end` (the next day when not after `start`)."""
    return f"""\
  - name: primary
    time_zone: {zone}
    layers:
      - members: [alice]
        rotation: 1d
        handoff: "2026-01-01 00:00"
        restrict: {{days: [mon, tue, wed, thu, fri, sat, sun], from: "{start}", to: "{end}"}}
"""


def on(warnings: list[Warning], path: str) -> list[str]:
    """Return the messages of the warnings at `path`."""
    return [w.message for w in warnings if w.path == path]


# A clean directory gives none.


@pytest.mark.parametrize("days", [0, 40, 83, 300])  # across both of Berlin's changes
def test_the_complete_directory_gives_no_warnings(days: int) -> None:
    assert lint(make_directory(), T0 + timedelta(days=days)) == []


@pytest.mark.parametrize("days", [0, 83, 300])
def test_the_shipped_example_gives_no_warnings(days: int) -> None:
    secrets = ("AM_TOKEN", "ALICE_TOKEN", "BOB_TOKEN", "ALICE_WEBHOOK_SECRET")
    environ = {name: f"{name.lower()}-0123456789abcdefghijklmnopqrstuv" for name in secrets}
    directory = parse_directory(EXAMPLE.read_text(), environ, str(EXAMPLE))
    assert lint(directory, T0 + timedelta(days=days)) == []


# Coverage gaps.


def test_each_gap_of_a_used_schedule_is_warned_with_its_local_start_and_end() -> None:
    warnings = lint(make_directory(schedules=OFFICE_HOURS), T0)  # T0: a Monday, 13:00 CET
    gaps = on(warnings, "schedules.primary")
    assert gaps[:5] == [
        "nobody on call from 2026-01-05 17:00 CET to 2026-01-06 09:00 CET (Europe/Berlin)",
        "nobody on call from 2026-01-06 17:00 CET to 2026-01-07 09:00 CET (Europe/Berlin)",
        "nobody on call from 2026-01-07 17:00 CET to 2026-01-08 09:00 CET (Europe/Berlin)",
        "nobody on call from 2026-01-08 17:00 CET to 2026-01-09 09:00 CET (Europe/Berlin)",
        "nobody on call from 2026-01-09 17:00 CET to 2026-01-12 09:00 CET (Europe/Berlin)",
    ]
    # Four weeks of five gaps, then Monday's and Tuesday's nights before the 30 days end
    # on Wednesday 4 February at 13:00.
    assert len(gaps) == 22
    assert gaps[-1].startswith("nobody on call from 2026-02-03 17:00 CET to 2026-02-04 09:00")


def test_a_gap_reaching_the_end_of_the_window_says_so() -> None:
    starts_later = OFFICE_HOURS.replace(
        'handoff: "2026-01-05 09:00"', 'handoff: "2026-03-02 09:00"'
    )
    [first, *_] = on(lint(make_directory(schedules=starts_later), T0), "schedules.primary")
    assert first == (
        "nobody on call from 2026-01-05 13:00 CET to 2026-02-04 13:00 CET (Europe/Berlin), "
        "the end of the 30 days checked"
    )


def test_a_gap_across_berlins_spring_change_ends_at_the_first_valid_local_time() -> None:
    # On call 02:30 to 23:00 daily; on 29 March 02:30 does not exist: the window opens at
    # 03:00 CEST, so that night's gap lasts three hours, not three and a half.
    now = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    directory = make_directory(schedules=daily("Europe/Berlin", "02:30", "23:00"))
    gaps = on(lint(directory, now), "schedules.primary")
    assert gaps[:3] == [
        "nobody on call from 2026-03-27 23:00 CET to 2026-03-28 02:30 CET (Europe/Berlin)",
        "nobody on call from 2026-03-28 23:00 CET to 2026-03-29 03:00 CEST (Europe/Berlin)",
        "nobody on call from 2026-03-29 23:00 CEST to 2026-03-30 02:30 CEST (Europe/Berlin)",
    ]
    spans = schedule_gaps(directory.schedules["primary"], [], now, now + timedelta(days=3))
    assert [end - start for start, end in spans] == [timedelta(hours=h) for h in (3.5, 3, 3.5)]


def test_a_gap_across_new_yorks_autumn_change_is_an_hour_longer() -> None:
    # On call 08:00 to 01:30 daily; on 1 November 01:30 comes twice and the window closes
    # at the first, so the gap runs from 01:30 EDT to 08:00 EST: seven and a half hours.
    now = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
    directory = make_directory(schedules=daily("America/New_York", "08:00", "01:30"))
    gaps = on(lint(directory, now), "schedules.primary")
    assert gaps[1] == (
        "nobody on call from 2026-11-01 01:30 EDT to 2026-11-01 08:00 EST (America/New_York)"
    )
    spans = schedule_gaps(directory.schedules["primary"], [], now, now + timedelta(days=3))
    assert spans[1][1] - spans[1][0] == timedelta(hours=7, minutes=30)


def test_an_override_that_fills_a_gap_removes_its_warning() -> None:
    directory = make_directory(schedules=OFFICE_HOURS)
    monday_night = Override("alice", T0 + timedelta(hours=4), T0 + timedelta(hours=20))
    warnings = lint(directory, T0, overrides={"primary": [monday_night]})
    gaps = on(warnings, "schedules.primary")
    assert len(gaps) == 21
    assert gaps[0].startswith("nobody on call from 2026-01-06 17:00 CET to 2026-01-07 09:00")


# Levels that page nobody.


def test_a_level_whose_schedules_are_all_empty_at_once_is_warned() -> None:
    # primary 09:00-17:00 and secondary 16:00-22:00 on weekdays: nobody 22:00 to 09:00.
    schedules = OFFICE_HOURS + OFFICE_HOURS.replace("primary", "secondary").replace(
        'from: "09:00", to: "17:00"', 'from: "16:00", to: "22:00"'
    )
    policies = POLICIES.replace(
        '["schedule:primary"]', '["schedule:primary", "schedule:secondary"]'
    )
    warnings = lint(make_directory(schedules=schedules, policies=policies), T0)
    level = on(warnings, "policies.default.levels[0]")
    assert level[0] == (
        "pages nobody from 2026-01-05 22:00 CET to 2026-01-06 09:00 CET (Europe/Berlin): "
        "nobody is on call in schedule:primary and schedule:secondary then"
    )
    assert len(level) == 22
    # The other levels have a user beside or instead of a schedule: a user always pages.
    assert on(warnings, "policies.default.levels[1]") == []
    assert on(warnings, "policies.backups.levels[0]") == []


def test_a_level_whose_schedules_cover_each_others_gaps_is_not_warned() -> None:
    nights = (
        OFFICE_HOURS.replace("primary", "nights")
        .replace("days: [mon, tue, wed, thu, fri], ", "days: [mon, tue, wed, thu, fri, sat, sun], ")
        .replace('from: "09:00", to: "17:00"', 'from: "17:00", to: "09:00"')
    )
    weekends = OFFICE_HOURS.replace("primary", "weekends").replace(
        'days: [mon, tue, wed, thu, fri], from: "09:00"', 'days: [sat, sun], from: "09:00"'
    )
    targets = '["schedule:primary", "schedule:nights", "schedule:weekends"]'
    policies = POLICIES.replace('["schedule:primary"]', targets)
    warnings = lint(
        make_directory(schedules=OFFICE_HOURS + nights + weekends, policies=policies), T0
    )
    assert on(warnings, "policies.default.levels[0]") == []
    assert on(warnings, "schedules.primary") != []  # each alone has gaps


def test_common_gaps_are_the_intersection_of_every_list() -> None:
    hour = [T0 + timedelta(hours=h) for h in range(10)]
    first = [(hour[0], hour[3]), (hour[5], hour[8])]
    second = [(hour[1], hour[6]), (hour[7], hour[9])]
    assert common_gaps([first, second]) == [
        (hour[1], hour[3]),
        (hour[5], hour[6]),
        (hour[7], hour[8]),
    ]
    assert common_gaps([first, second, [(hour[2], hour[9])]]) == [
        (hour[2], hour[3]),
        (hour[5], hour[6]),
        (hour[7], hour[8]),
    ]
    assert common_gaps([]) == []


# Users.


def test_a_user_without_any_contact_is_warned_with_the_levels_that_page_them() -> None:
    users = USERS + "  - {name: carol}\n  - {name: dave, contacts: []}\n"
    schedules = SCHEDULES.replace("members: [alice, bob]", "members: [alice, bob, carol]")
    warnings = lint(make_directory(users=users, schedules=schedules), T0)
    assert warnings == [
        Warning(
            "users.carol.contacts",
            "carol has no contact: a page to carol reaches nobody; paged by "
            "policies.default.levels[0] via schedule:primary, "
            "policies.backups.levels[0] via schedule:primary",
        ),
        Warning("users.dave.contacts", "dave has no contact: a page to dave reaches nobody"),
    ]


def test_rules_that_leave_an_urgency_with_no_contact_are_warned() -> None:
    # The parser refuses a rule naming a contact the user lacks; a directory built
    # otherwise (or a parser grown laxer) is still checked.
    directory = make_directory()
    alice = directory.users["alice"]
    rules = (("high", alice.rules("high")), ("low", (NotificationRule("sms", timedelta(0)),)))
    users = {**directory.users, "alice": dataclasses.replace(alice, notification_rules=rules)}
    assert lint(dataclasses.replace(directory, users=users), T0) == [
        Warning(
            "users.alice.notification_rules",
            "low-urgency pages reach none of alice's contacts: no rule of that urgency "
            "names a contact the user has",
        )
    ]


# Routes that can never match.

ROUTE_CASES = [
    # The earlier route's matchers are a subset of the later one's.
    (
        ['severity="critical"'],
        ['severity="critical"', 'team="db"'],
        'routes[0] {severity="critical"}',
    ),
    # The earlier route's regex accepts the later one's value.
    (['team=~"db|infra"'], ['team="db"', 'env="prod"'], 'routes[0] {team=~"db|infra"}'),
    # A negative matcher accepts every other value.
    (['team!="web"'], ['team="db"'], 'routes[0] {team!="web"}'),
    # The same regex twice.
    (['team=~"db.*"'], ['team=~"db.*"', 'env="prod"'], 'routes[0] {team=~"db.*"}'),
]


@pytest.mark.parametrize(("earlier", "later", "shadow"), ROUTE_CASES)
def test_a_route_an_earlier_one_shadows_is_warned(
    earlier: list[str], later: list[str], shadow: str
) -> None:
    routes = (
        f"  - {{match: {earlier!r}, policy: default}}\n  - {{match: {later!r}, policy: default}}\n"
    )
    routes += "  - {policy: backups}\n"
    warnings = lint(make_directory(routes=routes), T0)
    assert on(warnings, "routes[1]") == [
        f"can never match: {shadow} matches every alert it matches"
    ]
    assert on(warnings, "routes[0]") == on(warnings, "routes[2]") == []


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        (['severity="critical"', 'team="db"'], ['severity="critical"']),  # narrower first
        (['team=~"db"'], ['team=~"db|infra"']),  # a narrower regex first
        (['team="db"'], ['team!="db"']),  # disjoint
        (['team!="web"'], ['env="prod"']),  # the later one lets team be web
    ],
)
def test_a_route_no_earlier_one_shadows_is_not_warned(earlier: list[str], later: list[str]) -> None:
    routes = (
        f"  - {{match: {earlier!r}, policy: default}}\n  - {{match: {later!r}, policy: default}}\n"
    )
    routes += "  - {policy: backups}\n"
    assert [w for w in lint(make_directory(routes=routes), T0) if w.path.startswith("routes")] == []


def test_every_route_after_a_catch_all_is_warned() -> None:
    routes = "  - {match: ['team=\"db\"'], policy: backups}\n  - {policy: default}\n"
    routes += "  - {match: ['team=\"web\"'], policy: default}\n  - {policy: backups}\n"
    warnings = lint(make_directory(routes=routes), T0)
    shadowed = "can never match: routes[1] has no matchers and matches every alert"
    assert on(warnings, "routes[2]") == on(warnings, "routes[3]") == [shadowed]
    assert on(warnings, "routes[0]") == on(warnings, "routes[1]") == []


@pytest.mark.parametrize(
    ("matchers", "clash"),
    [
        (['team="db"', 'team="web"'], 'team="db" and team="web"'),
        (['team="db"', 'team!="db"'], 'team="db" and team!="db"'),
        (['team="db"', 'team=~"web.*"'], 'team="db" and team=~"web.*"'),
    ],
)
def test_a_route_whose_matchers_contradict_each_other_is_warned(
    matchers: list[str], clash: str
) -> None:
    routes = f"  - {{match: {matchers!r}, policy: default}}\n  - {{policy: backups}}\n"
    warnings = lint(make_directory(routes=routes), T0)
    assert on(warnings, "routes[0]") == [
        f"can never match: its matchers {clash} contradict each other"
    ]


# Policies and schedules nothing uses.


def test_a_policy_no_route_names_and_a_schedule_no_level_notifies_are_warned() -> None:
    policies = (
        POLICIES + "  - {name: spare, levels: [{notify: ['user:bob'], escalate_after: 5m}]}\n"
    )
    # An unused schedule's gaps are not warned: nothing pages through it.
    schedules = SCHEDULES + OFFICE_HOURS.replace("primary", "spare")
    warnings = lint(make_directory(policies=policies, schedules=schedules), T0)
    assert warnings == [
        Warning("schedules.spare", "nothing uses it: no policy level notifies schedule:spare"),
        Warning("policies.spare", "nothing uses it: no route names it"),
    ]


# Integrations whose alerts all go to the catch-all.

TEAM_ROUTES = """\
  - {match: ['severity="critical"', 'team="db"'], policy: backups}
  - {policy: default}
"""


def test_a_heartbeat_no_route_matches_is_warned_with_its_labels() -> None:
    warnings = lint(make_directory(routes=TEAM_ROUTES), T0)
    assert on(warnings, "integrations.backup") == [
        "every alert it sends goes to the catch-all routes[1]: no earlier route can match its "
        'labels (alertname="HeartbeatMissed", heartbeat="backup", severity="critical")'
    ]


def test_an_events_v2_integration_no_route_can_match_is_warned() -> None:
    warnings = lint(make_directory(routes=TEAM_ROUTES), T0)
    assert on(warnings, "integrations.pd") == [
        "every alert it sends goes to the catch-all routes[1]: no earlier route can match its "
        "labels (class, component, group, severity, source)"
    ]
    # Its severity is one of PagerDuty's four: a route for another never matches it.
    fatal = "  - {match: ['severity=\"fatal\"'], policy: backups}\n  - {policy: default}\n"
    assert on(lint(make_directory(routes=fatal), T0), "integrations.pd") != []


@pytest.mark.parametrize(
    "matchers",
    [
        ['severity="critical"'],  # one of its severities
        ['component=~"disk.*"'],  # free text from the payload: it may
        ['team!="web"'],  # a label it never sets reads as "", which is not "web"
    ],
)
def test_an_events_v2_integration_a_route_may_match_is_not_warned(matchers: list[str]) -> None:
    routes = f"  - {{match: {matchers!r}, policy: backups}}\n  - {{policy: default}}\n"
    assert on(lint(make_directory(routes=routes), T0), "integrations.pd") == []


def test_integrations_are_not_warned_when_every_route_is_a_catch_all() -> None:
    # Nothing routes by label: the catch-all is where everything is meant to go.
    warnings = lint(make_directory(routes="  - {policy: default}\n"), T0)
    assert [w.path for w in warnings] == ["policies.backups"]


def test_an_alertmanager_integration_is_never_warned() -> None:
    # Its labels are whatever its alerting rules say: nothing to know them by.
    warnings = lint(make_directory(routes=TEAM_ROUTES), T0)
    assert on(warnings, "integrations.prometheus") == []
