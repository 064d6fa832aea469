"""PagerDuty's objects into the directory's, without HTTP (`convert` and its parts)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, time

import pytest

from oncall.imports.directory_writer import ImportedRestriction, check, render
from oncall.imports.pagerduty import Snapshot, convert, restriction_groups, zone_name
from tests.imports.pagerduty_api import fixture

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ALL = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = ALL[:5]


def weekly(day: int, start: str, seconds: int) -> dict[str, object]:
    return {
        "type": "weekly_restriction",
        "start_day_of_week": day,
        "start_time_of_day": start,
        "duration_seconds": seconds,
    }


def daily(start: str, seconds: int) -> dict[str, object]:
    return {"type": "daily_restriction", "start_time_of_day": start, "duration_seconds": seconds}


@pytest.mark.parametrize(
    ("restrictions", "groups"),
    [
        # none: the layer is not restricted
        ([], None),
        # a daily window across midnight: one restriction, every day
        ([daily("22:00:00", 36000)], [ImportedRestriction(ALL, time(22), time(8))]),
        # a daily window of 24 hours is no restriction
        ([daily("08:00:00", 86400)], None),
        # PagerDuty's business hours: five weekly windows, one restriction
        (
            [weekly(d, "09:00:00", 28800) for d in range(1, 6)],
            [ImportedRestriction(WEEKDAYS, time(9), time(17))],
        ),
        # a weekend of 36 hours from Saturday 10:00: cut at midnight
        (
            [weekly(6, "10:00:00", 129600)],
            [
                ImportedRestriction(("sat",), time(10), time(0)),
                ImportedRestriction(("sun",), time(0), time(22)),
            ],
        ),
        # a whole week is no restriction
        ([weekly(1, "00:00:00", 604800)], None),
    ],
)
def test_restrictions_become_groups_of_equal_hours(restrictions, groups):
    found, comments = restriction_groups(restrictions)
    assert (found, comments) == (groups, [])


def test_a_restriction_it_cannot_read_is_a_comment():
    found, comments = restriction_groups(
        [{"type": "monthly", "start_time_of_day": "09:00:00", "duration_seconds": 60}]
    )
    assert found is None
    assert "is not understood: left out" in comments[0]
    found, comments = restriction_groups([daily("09:00:30", 3600)])
    assert found == [ImportedRestriction(ALL, time(9), time(10))]
    assert comments == ["restriction from 09:00:30 for 3600s: here to the minute"]


@pytest.mark.parametrize(
    ("given", "zone"),
    [
        ("Europe/Berlin", "Europe/Berlin"),  # the API's IANA names, as they are
        ("Eastern Time (US & Canada)", "America/New_York"),  # ActiveSupport's
        ("Mars/Olympus", None),  # unknown
        (None, None),
    ],
)
def test_time_zones(given, zone):
    assert zone_name(given) == zone


def snapshot(**changes) -> Snapshot:
    users = fixture("users.json")["users"]
    for user in users:
        user["contact_methods"] = fixture(f"contact_methods/{user['id']}.json")["contact_methods"]
        user["notification_rules"] = fixture(f"notification_rules/{user['id']}.json")[
            "notification_rules"
        ]
    schedules = [
        fixture(f"schedule_{s['id']}.json")["schedule"]
        for s in fixture("schedules.json")["schedules"]
    ]
    found = {
        "users": users,
        "schedules": schedules,
        "policies": fixture("escalation_policies.json")["escalation_policies"],
        "services": fixture("services.json")["services"],
    }
    found.update(changes)
    return Snapshot("https://api.pagerduty.com", **found)


def test_the_fixture_converts_to_a_valid_file_that_agrees_with_pagerduty():
    text = render(convert(snapshot(), NOW))
    assert check(text) == []
    assert text.count("(overrides aside): agrees") == 3


def test_the_layer_order_is_the_one_the_final_schedule_confirms():
    """Whichever end of `schedule_layers` holds the highest layer, the import finds it."""
    base = convert(snapshot(), NOW)
    schedules = snapshot().schedules
    flipped = copy.deepcopy(schedules)
    for schedule in flipped:
        schedule["schedule_layers"].reverse()
    again = convert(snapshot(schedules=flipped), NOW)
    assert [s.layers for s in again.schedules] == [s.layers for s in base.schedules]
    assert all("(overrides aside): agrees" in " ".join(s.comments) for s in again.schedules)


def test_a_schedule_that_differs_says_where():
    schedules = snapshot().schedules
    entry = schedules[2]["final_schedule"]["rendered_schedule_entries"][0]
    entry["user"] = {"id": "PGINA07", "type": "user_reference"}
    imported = convert(snapshot(schedules=schedules), NOW)
    comments = " ".join(imported.schedules[2].comments)
    assert "disagrees at 3 of 11 instants, e.g. 2027-03-26 22:00 PagerDuty names gina" in comments
    assert "here bob" in comments


def test_a_layer_starting_later_inside_a_turn_says_where_it_starts_here():
    schedules = snapshot().schedules
    layer = schedules[2]["schedule_layers"][0]
    layer["start"] = "2027-03-21T03:00:00+01:00"
    imported = convert(snapshot(schedules=schedules), NOW)
    [layer] = imported.schedules[2].layers
    assert layer.handoff == datetime(2027, 3, 20, 22, 0) and layer.members == ["bob", "erin"]
    assert (
        "layer 'Layer 1': starts at 2027-03-21T02:00:00Z, inside a turn: here at that turn's "
        "handoff, 2027-03-20T21:00:00Z" in imported.schedules[2].comments
    )


def test_a_layer_that_ends_later_says_so_and_an_ended_one_is_left_out():
    schedules = snapshot().schedules
    schedules[2]["schedule_layers"][0]["end"] = "2027-06-01T00:00:00+02:00"
    imported = convert(snapshot(schedules=schedules), NOW)
    assert (
        "layer 'Layer 1': PagerDuty ends it at 2027-05-31T22:00:00Z: oncall's layers do not end"
        in imported.schedules[2].comments
    )
    gone = convert(snapshot(schedules=schedules), datetime(2027, 7, 1, tzinfo=UTC))
    assert [s.name for s in gone.schedules] == ["primary-on-call", "database-us"]
    assert "PagerDuty schedule 'Nights' (PSCHED3) has no layer" in gone.notes["schedules"][0]
    # The policy that named it keeps its other target.
    level = gone.policies[0].levels[1]
    assert level.notify == ["user:frank"]
    assert "target schedule 'Nights' (PSCHED3) was not carried over" in level.comments[0]


def test_when_every_service_routes_alike_there_is_one_catch_all():
    services = [s for s in snapshot().services if s["id"] != "PSVC002"]
    imported = convert(snapshot(services=services), NOW)
    [route] = imported.routes
    assert (route.policy, route.match, route.urgency) == ("primary-escalation", [], "high")
    assert route.comments[0] == "every PagerDuty service routes alike: checkout-api, web"
