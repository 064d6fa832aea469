"""`python app.py import opsgenie` against Opsgenie's API played back from its fixtures.

The fixtures (tests/data/imports/opsgenie/) are shaped as Opsgenie's API reference
documents each answer; the two schedule timelines were written out by hand from the
rotations (tests/data/imports/README.md), so that the imported schedules can be checked
against Opsgenie's own word on who is on call, across both daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from oncall.imports import opsgenie
from oncall.imports.directory_writer import ImportedRestriction, render
from oncall.imports.http import open_client
from oncall.schedules.rotation import on_call
from tests.imports.vendor_api import (
    Route,
    VendorApi,
    instant,
    parse_imported,
    run_app,
    samples,
    serve,
    tokens_for,
)

KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"
NOW = datetime(2027, 3, 1, tzinfo=UTC)
SCHEDULE_IDS = {
    "platform-primary": "7c1e6f0a-3d2b-4e8f-9a61-5b4c3d2e1f01",
    "support-ny": "7c1e6f0a-3d2b-4e8f-9a61-5b4c3d2e1f02",
}
USER_IDS = {
    "alice": "2f9c4a10-6b1e-4c55-9a0e-0d1f7a3b5c01",
    "bob": "2f9c4a10-6b1e-4c55-9a0e-0d1f7a3b5c02",
    "carol": "2f9c4a10-6b1e-4c55-9a0e-0d1f7a3b5c03",
    "dave": "2f9c4a10-6b1e-4c55-9a0e-0d1f7a3b5c04",
}


def make_api(key: str = KEY) -> VendorApi:
    routes = [
        Route("/v2/users", "users_page1.json"),
        Route("/v2/users", "users_page2.json", {"offset": "3"}),
        Route("/v2/schedules", "schedules.json", {"expand": "rotation"}),
        Route("/v2/escalations", "escalations.json"),
        Route("/v2/integrations", "integrations.json"),
        Route("/v2/heartbeats", "heartbeats.json"),
        *(Route(f"/v2/users/{i}/contacts", f"contacts_{n}.json") for n, i in USER_IDS.items()),
        Route(
            f"/v2/schedules/{SCHEDULE_IDS['platform-primary']}/timeline",
            "timeline_platform_primary.json",
        ),
        Route(f"/v2/schedules/{SCHEDULE_IDS['support-ny']}/timeline", "timeline_support_ny.json"),
    ]
    return VendorApi("opsgenie", "https://api.opsgenie.com", f"GenieKey {key}", routes)


async def imported_text(api: VendorApi) -> str:
    async with open_client(api.base_url, opsgenie.auth_headers(KEY)) as client:
        return render(await opsgenie.import_directory(client, NOW))


async def test_the_import_reads_every_page_and_its_file_passes_check_config(tmp_path):
    output = tmp_path / "oncall.yaml"
    async with serve(make_api()) as api:
        code, out, err = await run_app(
            "import", "opsgenie", "--api-key", KEY, "--base-url", api.base_url, "-o", str(output)
        )
    assert code == 0, err
    assert out == ""  # the file went to --output
    assert "users[" not in err  # no problems reported
    requested = api.paths()
    assert requested.count("/v2/users") == 2  # paging.next followed to the second page
    assert {f"/v2/users/{i}/contacts" for i in USER_IDS.values()} <= set(requested)
    assert all(r.authorization == f"GenieKey {KEY}" for r in api.requests)
    text = output.read_text()
    assert KEY not in text and KEY not in err
    env = {"ONCALL_DIRECTORY_PATH": str(output), "ONCALL_DIRECTORY_ENV_FILE": str(tmp_path / "env")}
    code, out, err = await run_app("check-config", env={**env, **tokens_for(text)})
    assert code == 0, err
    assert "4 integrations, 4 users, 2 schedules, 2 policies, 1 routes" in out


async def test_a_refused_key_writes_nothing_and_is_not_printed(tmp_path):
    output = tmp_path / "oncall.yaml"
    async with serve(make_api(key="the-real-key")) as api:
        code, out, err = await run_app(
            "import", "opsgenie", "--api-key", KEY, "--base-url", api.base_url, "-o", str(output)
        )
    assert code == 2
    assert "401" in err and "refused" in err
    assert KEY not in err + out
    assert not output.exists()


@pytest.mark.parametrize(
    ("schedule", "timeline", "dst_checks"),
    [
        # Europe/Berlin goes to summer time on Sunday 2027-03-28: Monday's 09:00 handoff
        # and the business-hours window open at 07:00Z, no longer 08:00Z.
        (
            "platform-primary",
            "timeline_platform_primary.json",
            [("2027-03-29T07:30:00Z", "alice"), ("2027-03-29T06:30:00Z", "alice")],
        ),
        # America/New_York on Sunday 2027-03-14: the 09:00 handoff is at 13:00Z that day.
        (
            "support-ny",
            "timeline_support_ny.json",
            [("2027-03-14T13:30:00Z", "carol"), ("2027-03-14T12:30:00Z", "dave")],
        ),
    ],
)
async def test_the_imported_schedule_names_whoever_the_timeline_names(
    schedule, timeline, dst_checks
):
    async with serve(make_api()) as api:
        text = await imported_text(api)
        body = api.load(timeline)["data"]
    directory = parse_imported(text)
    by_email = {c.address: u.name for u in directory.users.values() for c in u.contacts}
    spans = [
        (instant(p["startDate"]), instant(p["endDate"]), by_email[p["recipient"]["name"]])
        for rotation in body["finalTimeline"]["rotations"]
        for p in rotation["periods"]
    ]
    checked = samples(spans)
    names = {who for _, who in checked}
    assert len(checked) >= 40 and len(names - {None}) == 2
    wrong = [
        (f"{at:%Y-%m-%d %H:%M}Z", expected, on_call(directory.schedules[schedule], [], at))
        for at, expected in checked
        if on_call(directory.schedules[schedule], [], at) != expected
    ]
    assert wrong == []
    for at, expected in dst_checks:
        assert [w for s, e, w in spans if s <= instant(at) < e] == [expected]
        assert on_call(directory.schedules[schedule], [], instant(at)) == expected


async def test_what_is_not_carried_over_is_said_in_comments():
    async with serve(make_api()) as api:
        text = await imported_text(api)
    for fragment in (
        "sms contact 49-15550100200 not carried over",
        "Opsgenie mobile app contact not carried over",
        "notification rules are not imported",
        "rotation 'Team cover 2026' ended 2026-06-01 09:00: not carried over",
        "a rule notifies team 'platform': not carried over",
        "the next on-call user of 'Support NY'",
        "escalate until it is acknowledged",
        "integration 'Old mailbox' (Email) is disabled",
        "overrides are not imported",
    ):
        assert fragment in text, fragment


async def test_escalation_rules_become_levels_and_heartbeats_heartbeats():
    async with serve(make_api()) as api:
        directory = parse_imported(await imported_text(api))
    platform = directory.policies["platform-escalation"]
    assert [[str(t) for t in level.targets] for level in platform.levels] == [
        ["schedule:platform-primary"],
        ["user:bob"],  # the team of the same delay is not carried over
        ["user:dave"],
    ]
    assert [level.escalate_after for level in platform.levels] == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=10),  # repeat.waitInterval
    ]
    assert platform.repeat == 2
    types = {i.name: i.type for i in directory.integrations.values()}
    assert types["prometheus"] == "alertmanager" and types["default-api"] == "events_v2"
    assert directory.integrations["nightly-backup"].interval == timedelta(days=1)
    assert directory.users["dave"].is_admin  # Opsgenie's Owner
    assert [c.address for c in directory.users["dave"].contacts] == ["dave@example.com"]


def make_account(rotation: dict, timezone: str = "Europe/Berlin") -> opsgenie.Account:
    user = {"id": "u1", "username": "ann@example.com", "fullName": "Ann"}
    other = {"id": "u2", "username": "ben@example.com", "fullName": "Ben"}
    rotation = {"startDate": "2027-01-04T08:00:00Z", "type": "weekly", **rotation}
    return opsgenie.Account(
        users=[user, other],
        schedules=[{"id": "s1", "name": "S", "timezone": timezone, "rotations": [rotation]}],
    )


def participants(*names: str) -> list[dict]:
    ids = {"ann": "u1", "ben": "u2"}
    return [{"type": "user", "id": ids[n]} if n in ids else {"type": n, "name": "x"} for n in names]


def test_a_time_of_day_restriction_across_midnight_is_one_window_a_day():
    account = make_account(
        {
            "participants": participants("ann"),
            "timeRestriction": {
                "type": "time-of-day",
                "restriction": {"startHour": 22, "startMin": 0, "endHour": 6, "endMin": 30},
            },
        }
    )
    (layer,) = opsgenie.convert(account, NOW).schedules[0].layers
    assert layer.restrict == ImportedRestriction(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), time(22), time(6, 30)
    )


def test_a_whole_day_time_of_day_restriction_restricts_nothing():
    account = make_account(
        {
            "participants": participants("ann"),
            "timeRestriction": {
                "type": "time-of-day",
                "restriction": {"startHour": 0, "startMin": 0, "endHour": 24, "endMin": 0},
            },
        }
    )
    (layer,) = opsgenie.convert(account, NOW).schedules[0].layers
    assert layer.restrict is None


def test_participants_that_are_not_users_are_left_out_with_a_comment():
    account = make_account({"participants": participants("ann", "none", "team", "ben")})
    (layer,) = opsgenie.convert(account, NOW).schedules[0].layers
    assert layer.members == ["ann", "ben"]
    assert any("`none` participant" in c for c in layer.comments)
    assert any("team participant 'x' not carried over" in c for c in layer.comments)


def test_a_rotation_ending_later_is_kept_with_a_comment_and_an_ended_one_dropped():
    later = make_account({"participants": participants("ann"), "endDate": "2027-06-01T08:00:00Z"})
    (layer,) = opsgenie.convert(later, NOW).schedules[0].layers
    assert any("it ends 2027-06-01 10:00 in Opsgenie" in c for c in layer.comments)
    ended = make_account({"participants": participants("ann"), "endDate": "2027-02-01T08:00:00Z"})
    converted = opsgenie.convert(ended, NOW)
    assert converted.schedules == []
    assert any("'S' not carried over" in n for n in converted.notes["schedules"])


def test_the_handoff_is_the_start_in_the_schedules_zone_and_lengths_multiply():
    account = make_account(
        {"participants": participants("ann", "ben"), "type": "hourly", "length": 12},
        timezone="Asia/Kolkata",
    )
    (layer,) = opsgenie.convert(account, NOW).schedules[0].layers
    assert layer.handoff == datetime(2027, 1, 4, 13, 30)  # 08:00Z is 13:30 in India
    assert layer.rotation == timedelta(hours=12)


def test_an_escalation_that_repeats_at_once_waits_a_minute_here():
    account = opsgenie.Account(
        users=[{"id": "u1", "username": "ann@example.com"}],
        escalations=[
            {
                "id": "e1",
                "name": "E",
                "rules": [
                    {
                        "condition": "if-not-acked",
                        "notifyType": "default",
                        "delay": {"timeAmount": 2, "timeUnit": "hours"},
                        "recipient": {"type": "user", "id": "u1"},
                    }
                ],
                "repeat": {"waitInterval": 0, "count": 3},
            }
        ],
    )
    (policy,) = opsgenie.convert(account, NOW).policies
    assert policy.repeat == 3
    assert policy.levels[0].escalate_after == timedelta(minutes=1)
    assert any("its first rule waits 2h" in c for c in policy.comments)
    assert any("repeats at once" in c for c in policy.comments)


async def test_each_schedule_says_it_agrees_with_opsgenies_timeline():
    async with serve(make_api()) as api:
        text = await imported_text(api)
    timeline = [r for r in api.requests if r.path.endswith("/timeline")]
    assert len(timeline) == 2
    assert timeline[0].query == {
        "date": "2027-03-01T00:00:00Z",
        "interval": "2",
        "intervalUnit": "weeks",
    }
    assert (
        "# checked against Opsgenie's on-call data from 2027-03-22 00:00 to 2027-04-05 00:00 at"
        in text
    )
    assert (
        "# checked against Opsgenie's on-call data from 2027-03-10 00:00 to 2027-03-17 00:00 at"
        in text
    )
    assert text.count("instants: agrees") == 2


def test_a_schedule_that_disagrees_with_the_timeline_says_where():
    timeline = VendorApi("opsgenie", "", "", []).load("timeline_support_ny.json")["data"]
    period = timeline["finalTimeline"]["rotations"][0]["periods"][9]  # Sunday 09:00 EDT
    period["recipient"] = {"id": USER_IDS["dave"], "type": "user", "name": "dave@example.com"}
    schedules = VendorApi("opsgenie", "", "", []).load("schedules.json")["data"]
    users = [{"id": i, "username": f"{n}@example.com"} for n, i in USER_IDS.items()]
    account = opsgenie.Account(
        users=users, schedules=schedules[1:], timelines={schedules[1]["id"]: timeline}
    )
    (schedule,) = opsgenie.convert(account, NOW).schedules
    (said,) = [c for c in schedule.comments if c.startswith("checked against")]
    assert "disagrees at 3 of 48 instants" in said
    assert "2027-03-14 09:00 Opsgenie names dave, here carol" in said
