"""`python app.py import grafana-oncall` against Grafana OnCall's API played back from its
fixtures.

The fixtures (tests/data/imports/grafana_oncall/) are shaped as Grafana OnCall's API
reference documents each answer; the two schedules' final shifts were written out by hand
from their shifts (tests/data/imports/README.md), so that the imported schedules can be
checked against Grafana OnCall's own word on who is on call, across both daylight-saving
changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from oncall.imports import grafana_oncall
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

TOKEN = "c6a2f0d1e4b7489a9d3c5e8f1a2b4c6d8e0f1a3b5c7d9e1f"
NOW = datetime(2027, 3, 1, tzinfo=UTC)
# The two weeks the final shifts fixtures were written for (Platform's; Support NY's go on).
CHECKED_FROM = datetime(2027, 3, 22, 10, 30, tzinfo=UTC)
PLATFORM, SUPPORT = "SPLATF0RMWEB1", "SSUPP0RTNYC02"
# The integrations' URLs hold Grafana OnCall's tokens: none may reach the file.
VENDOR_TOKENS = (
    "mReAoNwDm0eMwKo1mTeTwYo",
    "Qx7pLm2sTk9VbN4cRd8WfY3hZ",
    "Hn5tGv8kPq2wXz6yBm4jLs7dR",
)


def make_api(token: str = TOKEN) -> VendorApi:
    shifts = "/api/v1/on_call_shifts/"
    routes = [
        Route("/api/v1/users/", "users_page1.json"),
        Route("/api/v1/users/", "users_page2.json", {"page": "2"}),
        Route("/api/v1/schedules/", "schedules.json"),
        Route(shifts, "on_call_shifts_platform_page1.json", {"schedule_id": PLATFORM}),
        Route(shifts, "on_call_shifts_platform_page2.json", {"schedule_id": PLATFORM, "page": "2"}),
        Route(shifts, "on_call_shifts_support_ny.json", {"schedule_id": SUPPORT}),
        Route("/api/v1/escalation_chains/", "escalation_chains.json"),
        Route("/api/v1/escalation_policies/", "escalation_policies_page1.json"),
        Route("/api/v1/escalation_policies/", "escalation_policies_page2.json", {"page": "2"}),
        Route("/api/v1/integrations/", "integrations.json"),
        Route("/api/v1/routes/", "routes.json"),
        Route(f"/api/v1/schedules/{PLATFORM}/final_shifts", "final_shifts_platform.json"),
        Route(f"/api/v1/schedules/{SUPPORT}/final_shifts", "final_shifts_support_ny.json"),
    ]
    # Grafana Cloud's API URL has a path (…grafana.net/oncall): the importer keeps it.
    return VendorApi("grafana_oncall", "https://oncall.example.com", token, routes, "/oncall")


async def imported_text(api: VendorApi, now: datetime = NOW) -> str:
    async with open_client(api.base_url, grafana_oncall.auth_headers(TOKEN)) as client:
        return render(await grafana_oncall.import_directory(client, now))


async def test_the_import_reads_every_page_and_its_file_passes_check_config(tmp_path):
    output = tmp_path / "oncall.yaml"
    async with serve(make_api()) as api:
        code, out, err = await run_app(
            "import",
            "grafana-oncall",
            "--api-token",
            TOKEN,
            "--base-url",
            api.base_url,
            "--output",
            str(output),
        )
    assert code == 0, err
    assert out == ""
    requested = [(r.path, r.query.get("page")) for r in api.requests]
    for path in ("users", "escalation_policies"):
        assert (f"/oncall/api/v1/{path}/", "2") in requested  # `next` followed
    assert ("/oncall/api/v1/on_call_shifts/", "2") in requested
    assert all(r.authorization == TOKEN for r in api.requests)
    text = output.read_text()
    assert not any(t in text for t in (TOKEN, *VENDOR_TOKENS))
    env = {"ONCALL_DIRECTORY_PATH": str(output), "ONCALL_DIRECTORY_ENV_FILE": str(tmp_path / "env")}
    code, out, err = await run_app("check-config", env={**env, **tokens_for(text)})
    assert code == 0, err
    assert "3 integrations, 5 users, 2 schedules, 2 policies, 1 routes" in out


async def test_a_refused_token_writes_nothing_and_is_not_printed(tmp_path):
    output = tmp_path / "oncall.yaml"
    async with serve(make_api(token="another-token")) as api:
        code, out, err = await run_app(
            "import", "grafana-oncall", "--api-token", TOKEN, "--base-url", api.base_url,
            "-o", str(output),
        )  # fmt: skip
    assert code == 2
    assert "401" in err and TOKEN not in err + out
    assert not output.exists()


@pytest.mark.parametrize(
    ("schedule", "final_shifts", "window", "dst_checks"),
    [
        # Europe/Berlin goes to summer time on Sunday 2027-03-28: that day's weekend shift
        # is 08:00Z to 14:00Z (Saturday's 09:00Z), Monday's handoff 07:00Z.
        (
            "platform",
            "final_shifts_platform.json",
            ("2027-03-22T00:00:00Z", "2027-04-05T00:00:00Z"),
            [
                ("2027-03-28T08:30:00Z", "alice"),
                ("2027-03-29T07:30:00Z", "carol"),
                ("2027-03-29T06:30:00Z", "bob"),
            ],
        ),
        # America/New_York on Sunday 2027-03-14: the 09:00 shift starts at 13:00Z.
        (
            "support-ny",
            "final_shifts_support_ny.json",
            ("2027-03-10T00:00:00Z", "2027-03-17T00:00:00Z"),
            [("2027-03-14T13:30:00Z", "dave"), ("2027-03-15T01:30:00Z", None)],
        ),
    ],
)
async def test_the_imported_schedule_names_whoever_the_final_shifts_name(
    schedule, final_shifts, window, dst_checks
):
    async with serve(make_api()) as api:
        text = await imported_text(api)
        body = api.load(final_shifts)
    directory = parse_imported(text)
    spans = [
        (instant(s["shift_start"]), instant(s["shift_end"]), s["user_username"])
        for s in body["results"]
    ]
    start, end = (instant(w) for w in window)
    checked = [(at, who) for at, who in samples(spans) if start <= at < end]
    assert len(checked) >= 25
    wrong = [
        (f"{at:%Y-%m-%d %H:%M}Z", expected, on_call(directory.schedules[schedule], [], at))
        for at, expected in checked
        if on_call(directory.schedules[schedule], [], at) != expected
    ]
    assert wrong == []
    for at, expected in dst_checks:
        assert [w for s, e, w in spans if s <= instant(at) < e] == ([expected] if expected else [])
        assert on_call(directory.schedules[schedule], [], instant(at)) == expected


async def test_what_is_not_carried_over_is_said_in_comments():
    async with serve(make_api()) as api:
        text = await imported_text(api)
    for fragment in (
        "'Legacy iCal' reads an iCal feed: not carried over",
        "override 'Dentist swap' (dave, 2027-03-02 12:00 to 2027-03-02 14:00) not carried over",
        "one-off shift 'Launch day cover'",
        "a step that triggers an outgoing webhook is not carried over",
        "a step that notifies a Slack channel is not carried over",
        "notifies one of carol, dave in turn; here all",
        "waits 1m before its first notification",
        "Slack account not carried over",
        "personal notification rules are not imported",
        "route of 'Alertmanager' matching 'team=\"support\"' to support",
    ):
        assert fragment in text, fragment


async def test_escalation_steps_become_levels_between_waits():
    async with serve(make_api()) as api:
        directory = parse_imported(await imported_text(api))
    platform = directory.policies["platform-default"]
    assert [[str(t) for t in level.targets] for level in platform.levels] == [
        ["schedule:platform"],
        ["user:bob"],
        ["user:carol", "user:dave"],
    ]
    assert [level.escalate_after for level in platform.levels] == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=15),  # the wait before repeat_escalation
    ]
    assert platform.repeat == 5
    assert directory.routes[0].policy == "platform-default"  # the first integration's
    types = {i.name: i.type for i in directory.integrations.values()}
    assert types["alertmanager"] == "alertmanager" and types["deploy-webhook"] == "events_v2"


def make_stack(*shifts: dict, zone: str = "Europe/Berlin") -> grafana_oncall.Stack:
    users = [{"id": f"U{n}", "username": n, "email": f"{n}@example.com"} for n in "abcd"]
    schedule = {"id": "S1", "name": "S", "type": "web", "time_zone": zone}
    return grafana_oncall.Stack(users=users, schedules=[schedule], shifts={"S1": list(shifts)})


def rolling(**fields: object) -> dict:
    return {
        "id": "O1",
        "name": "R",
        "type": "rolling_users",
        "level": 0,
        "start": "2027-03-01T09:00:00",
        "duration": 86400,
        "frequency": "daily",
        "interval": 1,
        "rolling_users": [["Ua"], ["Ub"]],
        "start_rotation_from_user_index": 0,
        **fields,
    }


def test_daily_turns_on_selected_days_become_one_layer_a_weekday():
    # Two turns over Monday, Wednesday and Friday, each 8 hours: the turn moves on every
    # selected day (a b a, b a b, ...), so each weekday alternates, from a different one.
    shift = rolling(by_day=["MO", "WE", "FR"], duration=28800)
    layers = grafana_oncall.convert(make_stack(shift), NOW).schedules[0].layers
    assert [(layer.restrict.days, layer.members) for layer in layers if layer.restrict] == [
        (("mon",), ["a", "b"]),
        (("wed",), ["b", "a"]),
        (("fri",), ["a", "b"]),
    ]
    assert len(layers) == 3
    assert {layer.rotation for layer in layers} == {timedelta(weeks=1)}
    assert layers[1].handoff == datetime(2027, 3, 3, 9)


def test_the_rotation_starts_from_the_given_group_and_at_rotation_start():
    shift = rolling(start_rotation_from_user_index=1, rotation_start="2027-03-04T09:00:00")
    (layer,) = grafana_oncall.convert(make_stack(shift), NOW).schedules[0].layers
    assert layer.members == ["b", "a"]
    assert layer.handoff == datetime(2027, 3, 4, 9)  # the first event from rotation_start


def test_a_group_of_several_users_is_its_first_user_with_a_comment():
    shift = rolling(rolling_users=[["Ua", "Ud"], ["Ub"]])
    (layer,) = grafana_oncall.convert(make_stack(shift), NOW).schedules[0].layers
    assert layer.members == ["a", "b"]
    assert any("pages a, d together; here a alone" in c for c in layer.comments)


def test_higher_levels_are_later_layers():
    low = rolling(id="O1", name="low", level=0)
    high = rolling(id="O2", name="high", level=3, rolling_users=[["Uc"]], duration=3600)
    layers = grafana_oncall.convert(make_stack(high, low), NOW).schedules[0].layers
    assert [layer.members for layer in layers] == [["a", "b"], ["c"]]
    assert layers[1].restrict == ImportedRestriction(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), time(9), time(10)
    )


def test_a_shift_in_another_zone_moves_into_the_schedules_with_a_comment():
    shift = rolling(time_zone="America/New_York")
    (layer,) = grafana_oncall.convert(make_stack(shift), NOW).schedules[0].layers
    assert layer.handoff == datetime(2027, 3, 1, 15)  # 09:00 in New York, 15:00 in Berlin
    assert any("America/New_York's in Grafana OnCall" in c for c in layer.comments)


def test_ended_and_monthly_shifts_are_left_out():
    ended = rolling(id="O1", name="ended", until="2027-02-01T00:00:00")
    monthly = rolling(id="O2", name="monthly", frequency="monthly")
    converted = grafana_oncall.convert(make_stack(ended, monthly), NOW)
    assert converted.schedules == []
    notes = " ".join(converted.notes["schedules"])
    assert "'S' not carried over" in notes


async def test_each_schedule_says_it_agrees_with_the_final_shifts():
    async with serve(make_api()) as api:
        text = await imported_text(api, CHECKED_FROM)
    finals = [r for r in api.requests if r.path.endswith("/final_shifts")]
    assert [r.query for r in finals] == [{"start_date": "2027-03-22", "end_date": "2027-04-05"}] * 2
    assert (
        "# checked against Grafana OnCall's on-call data from 2027-03-22 01:00 to 2027-04-05 02:00"
        in text
    )
    assert text.count("instants: agrees") == 2


def test_a_schedule_that_disagrees_with_the_final_shifts_says_where():
    api = make_api()
    finals = api.load("final_shifts_platform.json")["results"]
    finals[11] |= {"user_pk": "UB0BB8U1LDER2", "user_username": "bob"}  # Sunday's weekend turn
    stack = grafana_oncall.Stack(
        users=api.load("users_page1.json")["results"] + api.load("users_page2.json")["results"],
        schedules=api.load("schedules.json")["results"][:1],
        shifts={
            PLATFORM: api.load("on_call_shifts_platform_page1.json")["results"]
            + api.load("on_call_shifts_platform_page2.json")["results"]
        },
        final_shifts={PLATFORM: finals},
        final_window=(datetime(2027, 3, 22, tzinfo=UTC), datetime(2027, 4, 5, tzinfo=UTC)),
    )
    (schedule,) = grafana_oncall.convert(stack, NOW).schedules
    (said,) = [c for c in schedule.comments if c.startswith("checked against")]
    assert "disagrees at 3 of" in said
    assert "2027-03-28 10:00 Grafana OnCall names bob, here alice" in said
