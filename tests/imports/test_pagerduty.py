"""`python app.py import pagerduty` against a local PagerDuty API answering with fixtures
shaped as PagerDuty's OpenAPI schema documents them (tests/data/imports/README.md)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import datetime, timedelta

import pytest

from oncall.directory.parse import load_directory
from oncall.schedules.rotation import on_call
from tests.imports.pagerduty_api import (
    SCHEDULE_IDS,
    PagerDutyApi,
    final_entries,
    fixture,
    override_entries,
)
from tests.support.process import ROOT

TOKEN = "u+pagerduty-api-token-for-the-test"
SCHEDULES = {"PSCHED1": "primary-on-call", "PSCHED2": "database-us", "PSCHED3": "nights"}


async def run_app(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        *args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def api(aiohttp_server):
    fake = PagerDutyApi(TOKEN)
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/"))
    return fake


@pytest.fixture
async def imported(api, tmp_path):
    """The directory file the import wrote, the token given in the environment."""
    output = tmp_path / "oncall.yaml"
    code, out, err = await run_app(
        "import",
        "pagerduty",
        "--base-url",
        api.url,
        "--output",
        str(output),
        env={"PAGERDUTY_API_TOKEN": TOKEN},
    )
    assert code == 0, err
    assert out == ""
    assert "wrote 8 users, 3 schedules, 2 policies, 3 integrations and 2 routes" in err
    return output


def pd_user_names(directory) -> dict[str, str]:
    """Return PagerDuty user id → the imported user, matched by full name."""
    by_full_name = {u.full_name: u.name for u in directory.users.values()}
    return {u["id"]: by_full_name[u["name"]] for u in fixture("users.json")["users"]}


def load(path):
    text = path.read_text()
    tokens = {
        name: f"{name.lower()}-generated-token-0123456789abcdef"
        for name in re.findall(r"\$\{([A-Z0-9_]+)\}", text)
    }
    return load_directory(str(path), tokens)


async def test_the_imported_file_passes_check_config_after_init(imported, database_env, tmp_path):
    env = {
        **database_env,
        "ONCALL_DIRECTORY_PATH": str(imported),
        "ONCALL_DIRECTORY_ENV_FILE": str(tmp_path / "oncall.env"),
        "ONCALL_SECURITY_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
    }
    code, out, err = await run_app("init", env=env)
    assert code == 0, err
    written = (tmp_path / "oncall.env").read_text()
    assert "USER_ALICE_TOKEN=" in written and "INTEGRATION_CHECKOUT_API_TOKEN=" in written
    code, out, err = await run_app("check-config", env=env)
    assert code == 0, err
    assert "3 integrations, 8 users, 3 schedules, 2 policies, 2 routes" in out, out


# Instants where the clock changes matter, each with whom the fixture's final schedule
# names then (checked against the fixture below, then against the import).
DST_INSTANTS = [
    # Berlin, 2027-03-29 09:30 CEST: the weekly handoff keeps 09:00 local after the change
    # (an hour later in UTC than the week before).
    ("PSCHED1", "2027-03-29T07:30:00+00:00", "PALICE1"),
    # Berlin, 2027-03-28 22:30 CEST: the weekend window ends at 22:00 local, not 36 hours
    # after it opened (23:00).
    ("PSCHED1", "2027-03-28T20:30:00+00:00", "PCAROL3"),
    # Berlin, 2027-03-28 07:30 CEST: the night of the change is 9 hours long.
    ("PSCHED3", "2027-03-28T05:30:00+00:00", "PERIN05"),
    ("PSCHED3", "2027-03-28T06:30:00+00:00", None),
    # New York, 2027-03-14 07:30 EDT: the 12-hour turns hand off at 07:00 local.
    ("PSCHED2", "2027-03-14T11:30:00+00:00", "PGINA07"),
    ("PSCHED2", "2027-03-14T10:30:00+00:00", "PHANK08"),
]


def fixture_on_call(schedule_id: str, at: datetime) -> str | None:
    for start, end, user in final_entries(schedule_id):
        if datetime.fromisoformat(start) <= at < datetime.fromisoformat(end):
            return user
    return None


@pytest.mark.parametrize(("schedule_id", "at", "user"), DST_INSTANTS)
def test_the_fixture_names_who_is_on_call_across_the_dst_change(schedule_id, at, user):
    assert fixture_on_call(schedule_id, datetime.fromisoformat(at)) == user


async def test_the_import_names_whom_the_fixture_names_across_the_dst_change(imported):
    directory = load(imported)
    names = pd_user_names(directory)
    for schedule_id, at, user in DST_INSTANTS:
        schedule = directory.schedules[SCHEDULES[schedule_id]]
        expected = names[user] if user else None
        assert on_call(schedule, (), datetime.fromisoformat(at)) == expected, (schedule_id, at)


async def test_the_import_agrees_with_every_final_schedule_entry(imported):
    """At the start, middle and last second of each entry, and in each gap: the same
    person as PagerDuty's final schedule, except under overrides (not imported)."""
    directory = load(imported)
    names = pd_user_names(directory)
    checked = 0
    for schedule_id in SCHEDULE_IDS:
        schedule = directory.schedules[SCHEDULES[schedule_id]]
        overrides = [
            (datetime.fromisoformat(s), datetime.fromisoformat(e))
            for s, e, _ in override_entries(schedule_id)
        ]
        entries = [
            (datetime.fromisoformat(s), datetime.fromisoformat(e), names[u])
            for s, e, u in final_entries(schedule_id)
        ]
        samples = []
        for index, (start, end, name) in enumerate(entries):
            samples += [
                (start, name),
                (start + (end - start) / 2, name),
                (end - timedelta(seconds=1), name),
            ]
            if index + 1 < len(entries) and entries[index + 1][0] > end:
                samples += [(end, None), (entries[index + 1][0] - timedelta(seconds=1), None)]
        for at, expected in samples:
            if any(s <= at < e for s, e in overrides):
                continue
            assert on_call(schedule, (), at) == expected, (schedule_id, at.isoformat())
            checked += 1
    assert checked > 80


async def test_it_reads_every_page_with_the_token_and_the_details(imported, api):
    paths = [path for path, _ in api.requests]
    assert api.refused == 0
    offsets = [q.get("offset", ["0"]) for p, q in api.requests if p == "/users"]
    assert offsets == [["0"], ["3"], ["6"]]
    assert paths.count("/services") == 2 and paths.count("/schedules") == 2
    # The listing holds references (the schema's shape): each list is read on its own,
    # the rules of both urgencies.
    for user in fixture("users.json")["users"]:
        methods = paths.count(f"/users/{user['id']}/contact_methods")
        assert methods == (1 if user["contact_methods"] else 0)
        rules = [q for p, q in api.requests if p == f"/users/{user['id']}/notification_rules"]
        assert rules == ([{"urgency": ["all"]}] if user["notification_rules"] else [])
    for path, query in api.requests:
        if path.startswith("/schedules/"):
            assert set(query) == {"since", "until"}


async def test_tokens_are_variables_and_nothing_is_copied_from_pagerduty(imported):
    text = imported.read_text()
    assert TOKEN not in text
    values = re.findall(r'\b(?:token|api_token|secret): ("[^"]*"|[^,}\s]+)', text)
    assert len(values) == 11  # 8 users, 3 integrations
    assert all(re.fullmatch(r'"\$\{[A-Z0-9_]+\}"', value) for value in values)


async def test_what_cannot_be_carried_over_is_a_comment(imported):
    text = imported.read_text()
    for said in (
        "# phone (Mobile) +49 15123456789: oncall does not place calls",
        "# sms (Mobile) +44 7700900123",
        "# push_notification (iPhone)",
        "# high-urgency rule after 1m pages a phone contact method: not carried over",
        "layer 'Old layer': ended at 2024-12-31T23:00:00Z: left out",
        "PagerDuty's overrides (1) are not carried over",
        "erin 2027-03-24T11:00:00Z to 2027-03-24T17:00:00Z",
        "integration 'Email' (PINT012) (generic_email_inbound_integration): oncall does not "
        "take alerts by e-mail",
        "'Legacy Billing' (PSVC003) is disabled: left out",
        "target schedule_v3 'New-style schedule' (PV3SCH1) was not carried over",
        "round robin in PagerDuty: oncall pages every target",
        "urgency by support hours in PagerDuty",
        "checked against PagerDuty's final schedule from 2027-03-22 to 2027-04-05 at 24 "
        "instants (overrides aside): agrees",
        "from 2027-03-12 to 2027-03-17 at 51 instants (overrides aside): agrees",
        "from 2027-03-26 to 2027-03-29 at 11 instants (overrides aside): agrees",
    ):
        assert said in text, said
    assert "disagrees" not in text


async def test_it_maps_policies_users_and_routes(imported):
    directory = load(imported)
    primary = directory.policies["primary-escalation"]
    assert primary.repeat == 2
    assert [[str(t) for t in level.targets] for level in primary.levels] == [
        ["schedule:primary-on-call"],
        ["user:frank", "schedule:nights"],
    ]
    assert [level.escalate_after for level in primary.levels] == [
        timedelta(minutes=15),
        timedelta(minutes=30),
    ]
    assert directory.users["alice"].is_admin and directory.users["frank"].is_admin
    assert not directory.users["dave"].is_admin
    carol = directory.users["carol"]
    assert [(r.contact, r.after) for r in carol.rules("high")] == [
        ("email", timedelta(0)),
        ("email-2", timedelta(minutes=10)),
    ]
    assert {i.name: i.type for i in directory.integrations.values()} == {
        "checkout-api": "events_v2",
        "postgres": "alertmanager",
        "web": "events_v2",
    }
    special, fallback = directory.routes
    assert special.policy == "database-escalation" and special.urgency == "by_severity"
    assert [str(m) for m in special.matchers] == ['service="postgres"']
    assert fallback.policy == "primary-escalation" and fallback.matchers == ()
    assert fallback.ack_timeout == timedelta(minutes=30)


async def test_a_refused_token_writes_nothing_and_says_so(api, tmp_path):
    output = tmp_path / "oncall.yaml"
    code, out, err = await run_app(
        "import",
        "pagerduty",
        "--api-token",
        "wrong-token-1234",
        "--base-url",
        api.url,
        "--output",
        str(output),
        env={},
    )
    assert code == 2
    assert "GET /users: 401: the API token was refused" in err
    assert "wrong-token-1234" not in err + out
    assert not output.exists()


async def test_it_refuses_to_overwrite_a_file(api, tmp_path):
    output = tmp_path / "oncall.yaml"
    output.write_text("mine\n")
    code, _, err = await run_app(
        "import",
        "pagerduty",
        "--api-token",
        TOKEN,
        "--base-url",
        api.url,
        "--output",
        str(output),
        env={},
    )
    assert code == 2 and "exists" in err
    assert output.read_text() == "mine\n" and api.requests == []


async def test_a_file_the_parser_refuses_is_written_and_its_problems_printed(api, tmp_path):
    api.empty = {"escalation_policies"}
    output = tmp_path / "oncall.yaml"
    code, _, err = await run_app(
        "import",
        "pagerduty",
        "--base-url",
        api.url,
        "--output",
        str(output),
        env={"PAGERDUTY_API_TOKEN": TOKEN},
    )
    assert code == 1
    assert "the written directory has problems to fix by hand" in err
    assert "routes: at least one route is required" in err
    assert "its escalation policy was not carried over" in output.read_text()
