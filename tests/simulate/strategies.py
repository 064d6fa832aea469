"""Hypothesis strategies for random but valid cases: a directory file (users with webhook
and Slack contacts and notification rules, schedules of 1-3 layers in Berlin, New York or
UTC, policies of 1-3 levels with repeats, routes with matchers, maintenance windows), the
overrides made before the alert, and the alert: an Alertmanager webhook or an Events v2
trigger whose labels routes and windows may or may not match, at an instant often close to
one of 2027's daylight-saving changes.

Everything is drawn from small vocabularies so that routes, windows and rules match as
often as they miss; the directory is written as YAML and parsed as the service parses it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from hypothesis import strategies as st

from oncall.durations import parse_duration
from tests.simulate.cases import (
    ADMIN_TOKEN,
    AM_TOKEN,
    EV_TOKEN,
    INTEGRATION,
    PRIOR_SOURCE,
    Case,
    OverrideSpec,
)

ZONES = ("Europe/Berlin", "America/New_York", "UTC")
# 2027's daylight-saving changes as instants (tests/simulate/test_strategies.py checks them).
DST_CHANGES = (
    datetime(2027, 3, 14, 7, 0, tzinfo=UTC),  # New York: 02:00 EST becomes 03:00 EDT
    datetime(2027, 3, 28, 1, 0, tzinfo=UTC),  # Berlin: 02:00 CET becomes 03:00 CEST
    datetime(2027, 10, 31, 1, 0, tzinfo=UTC),  # Berlin: 03:00 CEST becomes 02:00 CET
    datetime(2027, 11, 7, 6, 0, tzinfo=UTC),  # New York: 02:00 EDT becomes 01:00 EST
)
USERS = ("ann", "ben", "cat", "dan")
SCHEDULES = ("primary", "secondary")
POLICIES = ("p0", "p1")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Local clock times, dense around the changes' gaps and overlaps (01:00-03:00).
CLOCK_TIMES = ("00:00", "01:30", "02:00", "02:30", "03:00", "09:00", "17:30", "22:00")
ROTATIONS = ("1h", "90m", "8h", "12h", "1d", "2d", "1w")
ESCALATE_AFTER = ("1m", "2m", "5m", "10m", "15m", "30m", "1h")
RULE_DELAYS = ("0m", "0m", "1m", "2m", "5m", "10m", "30m")
ACK_TIMEOUTS = ("5m", "20m", "1h")
# Acknowledgements at the instants steps and pages are often due (the API takes no 0).
TIES = tuple(d for d in dict.fromkeys(ESCALATE_AFTER + RULE_DELAYS) if d != "0m")
# Storm thresholds one to three earlier openings (and the case's) may pass, or not.
STORMS = ("1/5m", "1/30m", "2/10m", "3/1h")
QUIET = "quiet"  # the user and the policy of the incidents opened before a storm
HOURS = (0.5, 1.0, 2.0, 3.0, 8.0, 24.0)
# Label values, shared by payloads, route matchers and window matchers.
VALUES = {
    "alertname": ("DiskFull", "HighLatency"),
    "team": ("db", "web", "infra"),
    "severity": ("critical", "error", "warning", "info"),
    "service": ("api", "db", "cache"),
    "group": ("db", "web", "infra"),
    "component": ("api", "db", "cache"),
    "source": ("db1", "web1"),
}
AM_OPTIONAL = ("team", "severity", "service")
EV_OPTIONAL = ("group", "component")


def instants() -> st.SearchStrategy[datetime]:
    """Instants in 2027, half of them within hours of a daylight-saving change."""
    near = st.builds(
        lambda change, minutes: change + timedelta(minutes=minutes),
        st.sampled_from(DST_CHANGES),
        st.integers(-8 * 60, 3 * 60),
    )
    ordinary = st.datetimes(
        min_value=datetime(2027, 1, 1), max_value=datetime(2027, 12, 30), timezones=st.just(UTC)
    ).map(lambda at: at.replace(second=0, microsecond=0))
    seconds = st.sampled_from((0, 0, 0, 17))  # mostly whole minutes, as timers mostly are
    return st.builds(
        lambda at, second: at + timedelta(seconds=second), st.one_of(near, ordinary), seconds
    )


def matchers(keys: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A matcher over one of `keys` with a value (or alternation) from the vocabulary."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        key = draw(st.sampled_from(keys))
        op = draw(st.sampled_from(("=", "=", "!=", "=~", "!~")))
        if op in ("=~", "!~"):
            choices = draw(st.lists(st.sampled_from(VALUES[key]), min_size=1, max_size=2))
            value = "|".join(dict.fromkeys(choices))
        else:
            value = draw(st.sampled_from(VALUES[key]))
        return f'{key}{op}"{value}"'

    return build()


# Over every label of the vocabulary: a route or a window may test a label the payload
# does not carry (absent labels match as "").
MATCHERS = matchers(tuple(VALUES))


@st.composite
def users(draw: st.DrawFn) -> list[dict[str, Any]]:
    """2-4 users, the first an admin (it makes the overrides and acknowledges), each with
    0-2 contacts on the receiver and, sometimes, rules per urgency."""
    count = draw(st.integers(2, len(USERS)))
    found = []
    for index, name in enumerate(USERS[:count]):
        # Now and then a user with no contact at all: paged, but reached on nothing.
        reached_on = draw(st.sampled_from((0, 1, 1, 1, 2, 2)))
        kinds = draw(
            st.lists(
                st.sampled_from(("webhook", "slack")), min_size=reached_on, max_size=reached_on
            )
        )
        contacts = [
            {"type": kind, "url": f"${{HOOK}}/{name}/{position}"}
            for position, kind in enumerate(kinds)
        ]
        names: list[str] = []
        for kind in kinds:  # the names the directory gives them
            names.append(kind if kind not in names else f"{kind}-{names.count(kind) + 1}")
        user: dict[str, Any] = {
            "name": name,
            "time_zone": draw(st.sampled_from(ZONES)),
            "contacts": contacts,
        }
        if index == 0:
            user.update(role="admin", api_token=ADMIN_TOKEN)
        rules = {}
        for urgency in ("high", "low"):
            wanted: bool = draw(st.booleans())
            if names and wanted:
                chosen = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
                rules[urgency] = [
                    {"contact": contact, "after": draw(st.sampled_from(RULE_DELAYS))}
                    for contact in chosen
                ]
        if rules:
            user["notification_rules"] = rules
        found.append(user)
    return found


def local_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@st.composite
def layers(draw: st.DrawFn, members: list[str], zone: str, at: datetime) -> dict[str, Any]:
    """A layer whose first handoff is a local time a few days before `at` (or, now and
    then, just after it: nobody is on call before), sometimes restricted."""
    day = at.astimezone(ZoneInfo(zone)).date() + timedelta(days=draw(st.integers(-8, 1)))
    handoff = datetime.combine(day, local_time(draw(st.sampled_from(CLOCK_TIMES))))
    layer: dict[str, Any] = {
        "members": draw(st.lists(st.sampled_from(members), min_size=1, max_size=3, unique=True)),
        "rotation": draw(st.sampled_from(ROTATIONS)),
        "handoff": handoff.strftime("%Y-%m-%d %H:%M"),
    }
    if draw(st.integers(0, 2)) == 0:
        start, end = draw(
            st.lists(st.sampled_from(CLOCK_TIMES), min_size=2, max_size=2, unique=True)
        )
        days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True))
        layer["restrict"] = {"days": days, "from": start, "to": end}
    return layer


@st.composite
def schedules(draw: st.DrawFn, members: list[str], at: datetime) -> list[dict[str, Any]]:
    found = []
    for name in SCHEDULES[: draw(st.integers(0, len(SCHEDULES)))]:
        zone = draw(st.sampled_from(ZONES))
        found.append(
            {
                "name": name,
                "time_zone": zone,
                "layers": draw(st.lists(layers(members, zone, at), min_size=1, max_size=3)),
            }
        )
    return found


@st.composite
def policies(draw: st.DrawFn, people: list[str], rotas: list[str]) -> list[dict[str, Any]]:
    """1-2 policies of 1-3 levels; a level's target is a schedule half the time there are
    schedules (users outnumber them)."""
    user_targets = st.sampled_from([f"user:{name}" for name in people])
    targets = user_targets
    if rotas:
        targets = st.one_of(user_targets, st.sampled_from([f"schedule:{n}" for n in rotas]))
    found = []
    for name in POLICIES[: draw(st.integers(1, len(POLICIES)))]:
        levels = [
            {
                "notify": draw(st.lists(targets, min_size=1, max_size=2, unique=True)),
                "escalate_after": draw(st.sampled_from(ESCALATE_AFTER)),
            }
            for _ in range(draw(st.integers(1, 3)))
        ]
        policy: dict[str, Any] = {"name": name, "repeat": draw(st.integers(0, 2)), "levels": levels}
        if draw(st.integers(0, 3)) == 0:
            policy["ack_timeout"] = draw(st.sampled_from(ACK_TIMEOUTS))
        found.append(policy)
    return found


@st.composite
def routes(draw: st.DrawFn, policy_names: list[str]) -> list[dict[str, Any]]:
    """0-2 routes with matchers, then the catch-all."""
    found = []
    for _ in range(draw(st.integers(0, 2))):
        route: dict[str, Any] = {
            "match": draw(st.lists(MATCHERS, min_size=1, max_size=2)),
            "policy": draw(st.sampled_from(policy_names)),
        }
        found.append(route)
    found.append({"policy": draw(st.sampled_from(policy_names))})
    for route in found:
        urgency = draw(st.sampled_from(("high", "high", "low", "by_severity")))
        if urgency != "high":
            route["urgency"] = urgency
        if draw(st.integers(0, 5)) == 0:
            route["ack_timeout"] = draw(st.sampled_from(ACK_TIMEOUTS))
    return found


@st.composite
def windows(draw: st.DrawFn, at: datetime) -> list[dict[str, Any]]:
    """0-2 maintenance windows: one-off ones around `at` (written in a zone's offset) or
    weekly ones, some for some labels or one integration only."""
    found = []
    for index in range(draw(st.sampled_from((0, 1, 1, 2)))):
        window: dict[str, Any] = {"name": f"w{index}"}
        zone = ZoneInfo(draw(st.sampled_from(ZONES)))
        if draw(st.booleans()):
            start = at + timedelta(minutes=draw(st.integers(-120, 180)))
            end = start + timedelta(minutes=draw(st.integers(5, 180)))
            window["start"] = start.astimezone(zone).isoformat()
            window["end"] = end.astimezone(zone).isoformat()
        else:
            start_text, end_text = draw(
                st.lists(st.sampled_from(CLOCK_TIMES), min_size=2, max_size=2, unique=True)
            )
            window["every"] = {
                "days": draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True)),
                "from": start_text,
                "to": end_text,
                "time_zone": str(zone),
            }
        if draw(st.booleans()):
            window["match"] = [draw(MATCHERS)]
        if draw(st.integers(0, 3)) == 0:
            window["integrations"] = [draw(st.sampled_from(sorted(INTEGRATION.values())))]
        found.append(window)
    return found


@st.composite
def directories(
    draw: st.DrawFn, at: datetime, storm: bool = False
) -> tuple[str, list[str], list[str], tuple[dict[str, Any], ...]]:
    """Return a directory file's YAML, its user names, its schedule names and the
    maintenance windows to add through the API (the others are in the file). `storm`: a
    first route sends the incidents opened before the case's to a user with no contacts,
    so they count towards the storm and page nobody."""
    people = draw(users())
    names = [user["name"] for user in people]
    rotas = draw(schedules(names, at))
    rota_names = [schedule["name"] for schedule in rotas]
    plans = draw(policies(names, rota_names))
    document: dict[str, Any] = {
        "integrations": [
            {"name": INTEGRATION["alertmanager"], "type": "alertmanager", "token": AM_TOKEN},
            {"name": INTEGRATION["events_v2"], "type": "events_v2", "token": EV_TOKEN},
        ],
        "users": people,
        "schedules": rotas,
        "policies": plans,
        "routes": draw(routes([p["name"] for p in plans])),
        "maintenance": [],
    }
    through_api = []
    for window in draw(windows(at)):
        if draw(st.booleans()):
            through_api.append(window)
        else:
            document["maintenance"].append(window)
    if storm:
        document["users"].append({"name": QUIET, "contacts": []})
        document["policies"].append(
            {"name": QUIET, "levels": [{"notify": [f"user:{QUIET}"], "escalate_after": "1h"}]}
        )
        document["routes"].insert(0, {"match": [f'source="{PRIOR_SOURCE}"'], "policy": QUIET})
    # libyaml's dumper where it is built in: the pure-Python one costs more than the case.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(document, Dumper=dumper, sort_keys=False)
    return text, names, rota_names, tuple(through_api)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@st.composite
def alertmanager_payloads(draw: st.DrawFn, at: datetime) -> dict[str, Any]:
    """A version 4 webhook of one firing alert; its labels are the group's common labels."""
    labels = {"alertname": draw(st.sampled_from(VALUES["alertname"]))}
    for key in AM_OPTIONAL:
        if draw(st.booleans()):
            labels[key] = draw(st.sampled_from(VALUES[key]))
    # Routes and windows read the group's common labels; the severity falls back to the
    # first alert's labels when the common ones have none.
    common = dict(labels)
    if len(labels) > 1 and draw(st.integers(0, 3)) == 0:
        del common[draw(st.sampled_from(sorted(set(labels) - {"alertname"})))]
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} on db1"},
        "startsAt": rfc3339(at),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "fp-case",
    }
    return {
        "receiver": "oncall",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": common,
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{labels["alertname"]}"}}',
        "truncatedAlerts": 0,
    }


@st.composite
def events_v2_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """An Events v2 trigger with a severity, a source and, sometimes, a group or component."""
    payload: dict[str, Any] = {
        "summary": "Disk full on db1",
        "source": draw(st.sampled_from(VALUES["source"])),
        "severity": draw(st.sampled_from(VALUES["severity"])),
    }
    for key in EV_OPTIONAL:
        if draw(st.booleans()):
            payload[key] = draw(st.sampled_from(VALUES[key]))
    return {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": "case",
        "payload": payload,
    }


@st.composite
def overrides(
    draw: st.DrawFn, at: datetime, names: list[str], rotas: list[str]
) -> tuple[OverrideSpec, ...]:
    """0-2 overrides of the directory's schedules, around `at`."""
    if not rotas:
        return ()
    found = []
    for _ in range(draw(st.integers(0, 2))):
        start = at + timedelta(minutes=draw(st.integers(-180, 240)))
        end = start + timedelta(minutes=draw(st.integers(15, 360)))
        found.append(
            OverrideSpec(draw(st.sampled_from(rotas)), draw(st.sampled_from(names)), start, end)
        )
    return tuple(found)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A whole case: directory, overrides, payload, instant, period, acknowledgement and,
    for a quarter of them, a storm threshold with 1-3 incidents opened before."""
    at = draw(instants())
    storm = draw(st.sampled_from((None, None, None, *STORMS)))
    prior: tuple[datetime, ...] = ()
    if storm is not None:
        minutes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=3, unique=True))
        prior = tuple(sorted(at - timedelta(minutes=m) for m in minutes))
    directory, names, rotas, api_windows = draw(directories(at, storm is not None))
    source = draw(st.sampled_from(("alertmanager", "events_v2")))
    payload = draw(alertmanager_payloads(at) if source == "alertmanager" else events_v2_payloads())
    acknowledge_after = None
    if draw(st.booleans()):
        seconds = draw(st.integers(1, 90)) * 60 + draw(st.sampled_from((0, 0, 30)))
        acknowledge_after = timedelta(seconds=seconds)
    elif draw(st.booleans()):  # at the instant a step or a page may be due: a tie
        acknowledge_after = parse_duration(draw(st.sampled_from(TIES)))
    return Case(
        directory=directory,
        source=source,
        payload=payload,
        at=at,
        hours=draw(st.sampled_from(HOURS)),
        acknowledge_after=acknowledge_after,
        overrides=draw(overrides(at, names, rotas)),
        api_windows=api_windows,
        storm=storm,
        prior=prior,
    )
