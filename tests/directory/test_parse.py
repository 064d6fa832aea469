"""The directory file: strict parsing, references, env expansion, every problem with its path."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from oncall.directory.parse import load_directory, parse_directory
from oncall.errors import ConfigError
from tests.support.factories import DIRECTORY_YAML


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_directory(text, env or {}, "d.yaml")
    return caught.value.problems


EXAMPLE_VARIABLES = ("AM_TOKEN", "ALICE_TOKEN", "ALICE_WEBHOOK_SECRET", "BOB_TOKEN")


def test_the_shipped_example_is_valid_with_its_tokens_set():
    tokens = {name: secrets.token_urlsafe(32) for name in EXAMPLE_VARIABLES}
    directory = load_directory("oncall.example.yaml", tokens)
    assert set(directory.users) == {"alice", "bob"}
    assert directory.integrations["prometheus"].token == tokens["AM_TOKEN"]
    assert directory.policies["default"].levels[0].escalate_after == timedelta(minutes=5)
    assert directory.routes[-1].matchers == ()


def test_the_shipped_example_has_no_token_of_its_own():
    problems = "\n".join(problems_of_file("oncall.example.yaml", {}))
    for path, name in (
        ("integrations[0].token", "AM_TOKEN"),
        ("users[0].api_token", "ALICE_TOKEN"),
        ("users[0].contacts[1].secret", "ALICE_WEBHOOK_SECRET"),
        ("users[1].api_token", "BOB_TOKEN"),
    ):
        assert f"oncall.example.yaml: {path}: environment variable {name} is not set" in problems


def problems_of_file(path: str, env: dict[str, str], env_file: str = "") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_directory(path, env, env_file)
    return caught.value.problems


def test_environment_variables_are_expanded(tmp_path):
    text = DIRECTORY_YAML.replace('"am-token-0123456789abcdefghijklmnopqrstuv"', '"${AM_TOKEN}"')
    directory = parse_directory(text, {"AM_TOKEN": "from-the-environment-0123456789abcdef"})
    assert directory.integrations["prometheus"].token == "from-the-environment-0123456789abcdef"
    problems = problems_of(text)
    assert problems == [
        "d.yaml: integrations[0].token: environment variable AM_TOKEN is not set: run "
        "`python app.py init` to generate it, or set it in the environment"
    ]


def test_the_env_file_gives_what_the_environment_lacks(tmp_path):
    directory_file = tmp_path / "d.yaml"
    directory_file.write_text(
        DIRECTORY_YAML.replace(
            '"am-token-0123456789abcdefghijklmnopqrstuv"', '"${AM_TOKEN}"'
        ).replace('"alice-token-0123456789abcdefghijklmnopqrstuv"', '"${ALICE_TOKEN}"')
    )
    env_file = tmp_path / "oncall.env"
    env_file.write_text(
        "# generated\nAM_TOKEN=from-the-env-file-0123456789abcdefgh\n"
        "ALICE_TOKEN='alice-from-the-file-0123456789abcdef'\n"
    )
    environ = {"ALICE_TOKEN": "alice-from-the-environment-0123456789abc"}
    directory = load_directory(str(directory_file), environ, str(env_file))
    assert directory.integrations["prometheus"].token == "from-the-env-file-0123456789abcdefgh"
    assert directory.users["alice"].api_token == "alice-from-the-environment-0123456789abc"
    # A variable neither has: the message says where `init` would put it.
    env_file.write_text("ALICE_TOKEN=alice-from-the-file-0123456789abcdef\n")
    [problem] = problems_of_file(str(directory_file), {}, str(env_file))
    assert problem.endswith(
        "integrations[0].token: environment variable AM_TOKEN is not set: run "
        f"`python app.py init` to generate it into {env_file}, or set it in the environment"
    )


def test_a_bad_env_file_line_is_named_without_its_text(tmp_path):
    directory_file = tmp_path / "d.yaml"
    directory_file.write_text(DIRECTORY_YAML)
    env_file = tmp_path / "oncall.env"
    env_file.write_text("OK=fine\nthis is a secret-ish line\n")
    [problem] = problems_of_file(str(directory_file), {}, str(env_file))
    assert problem == f"{env_file}: line 2: expected NAME=value"


def test_defaults_and_literal_dollars_in_expansion():
    text = DIRECTORY_YAML.replace(
        '"am-token-0123456789abcdefghijklmnopqrstuv"',
        '"${NOPE:-fallback-token-0123456789abcdefghijklm}"',
    )
    text = text.replace("Alice Example", "Alice $${HOME}")
    directory = parse_directory(text, {})
    assert directory.integrations["prometheus"].token == "fallback-token-0123456789abcdefghijklm"
    assert directory.users["alice"].full_name == "Alice ${HOME}"


# (case, replacement applied to the valid file, a fragment of the expected problem)
BAD = [
    ("unknown top-level key", ("routes:", "extras: 1\nroutes:"), "(top).extras: unknown key"),
    (
        "unknown user key",
        ("full_name: Alice Example", "nickname: al"),
        "users[0].nickname: unknown key",
    ),
    (
        "unknown integration type",
        ("type: alertmanager", "type: nagios"),
        "integrations[0].type: expected one of",
    ),
    (
        "short token",
        ('"am-token-0123456789abcdefghijklmnopqrstuv"', '"short"'),
        "at least 32 characters",
    ),
    ("bad time zone", ("Europe/Berlin", "Mars/Olympus"), "users[0].time_zone: unknown time zone"),
    ("bad e-mail", ("alice@example.com", "alice"), "users[0].contacts[0].to"),
    (
        "unknown contact type",
        ("{type: email, to: alice@example.com}", "{type: pager, to: x}"),
        "users[0].contacts[0].type",
    ),
    (
        "unknown user in a policy",
        ('"user:bob"', '"user:carol"'),
        "policies[0].levels[1].notify[0]: unknown user 'carol'",
    ),
    (
        "bad duration",
        ("escalate_after: 5m", "escalate_after: 5 minutes"),
        "policies[0].levels[0].escalate_after",
    ),
    ("zero duration", ("escalate_after: 5m", "escalate_after: 0s"), "must be above zero"),
    (
        "unknown policy in a route",
        ("policy: default}\n  - {policy", "policy: other}\n  - {policy"),
        "routes[0].policy: unknown policy",
    ),
    ("bad matcher", ("'severity=\"critical\"'", "'severity~critical'"), "routes[0].match[0]"),
    (
        "last route not a catch-all",
        ("  - {policy: default}\n", ""),
        "the last route must be a catch-all",
    ),
    ("duplicate user", ("name: bob", "name: alice"), "users[1].name: duplicate name 'alice'"),
    (
        "token reused",
        (
            '"bob-token-0123456789abcdefghijklmnopqrstuv"',
            '"alice-token-0123456789abcdefghijklmnopqrstuv"',
        ),
        "the same token is already used at users[0].api_token",
    ),
]


@pytest.mark.parametrize(("case", "change", "expected"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_directory_names_the_problem(case, change, expected):
    old, new = change
    assert old in DIRECTORY_YAML, f"test setup: {old!r} not in the file"
    problems = problems_of(DIRECTORY_YAML.replace(old, new, 1))
    assert any(expected in p for p in problems), problems


def test_all_problems_are_reported_together():
    text = (
        DIRECTORY_YAML.replace("Europe/Berlin", "Nowhere/Land")
        .replace("escalate_after: 10m", "escalate_after: ten")
        .replace("policy: default}\n  - {policy", "policy: nope}\n  - {policy")
    )
    problems = problems_of(text)
    assert len(problems) == 3, problems


def test_tokens_are_found_by_constant_time_comparison():
    directory = parse_directory(DIRECTORY_YAML, {})
    assert directory.integration_for_token(
        "alertmanager", "am-token-0123456789abcdefghijklmnopqrstuv"
    ).name == ("prometheus")
    assert directory.integration_for_token("alertmanager", "am-token-012345678") is None
    assert directory.user_for_token("bob-token-0123456789abcdefghijklmnopqrstuv").name == "bob"
    assert directory.user_for_token("am-token-0123456789abcdefghijklmnopqrstuv") is None


SCHEDULE = """
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - members: [alice, bob]
        rotation: 1w
        handoff: "2026-11-30 09:00"
        restrict: {days: [mon, tue], from: "18:00", to: "08:00"}
"""


def with_schedule(schedule: str = SCHEDULE) -> str:
    return DIRECTORY_YAML.replace("policies:", "schedules:" + schedule + "policies:").replace(
        '"user:bob"', '"schedule:primary"'
    )


def test_a_schedule_parses_and_can_be_a_target():
    directory = parse_directory(with_schedule(), {})
    layer = directory.schedules["primary"].layers[0]
    assert layer.members == ("alice", "bob") and layer.rotation == timedelta(weeks=1)
    assert sorted(layer.restrict.days) == [0, 1]
    assert str(directory.policies["default"].levels[1].targets[0]) == "schedule:primary"


# (case, replacement in the schedule, expected problem)
BAD_SCHEDULES = [
    ("unknown member", ("[alice, bob]", "[alice, zed]"), "members[1]: unknown user 'zed'"),
    ("unknown time zone", ("Europe/Berlin", "Europe/Atlantis"), "unknown time zone"),
    ("empty members", ("[alice, bob]", "[]"), "at least one member"),
    ("zero rotation", ("rotation: 1w", "rotation: 0s"), "rotation: must be above zero"),
    ("bad handoff", ('"2026-11-30 09:00"', '"next monday"'), "handoff: expected local time"),
    ("bad day", ("[mon, tue]", "[mon, funday]"), "restrict.days"),
    ("bad clock time", ('"18:00"', '"25:00"'), "restrict.from"),
]


@pytest.mark.parametrize(
    ("case", "change", "expected"), BAD_SCHEDULES, ids=[b[0] for b in BAD_SCHEDULES]
)
def test_a_bad_schedule_names_the_problem(case, change, expected):
    problems = problems_of(with_schedule(SCHEDULE.replace(*change)))
    assert any(expected in p for p in problems), problems


def test_empty_layers_and_unknown_schedule_targets_are_errors():
    empty = "\n  - {name: primary, time_zone: UTC, layers: []}\n"
    assert any("at least one layer" in p for p in problems_of(with_schedule(empty)))
    text = with_schedule().replace('"schedule:primary"', '"schedule:secondary"')
    assert any("unknown schedule 'secondary'" in p for p in problems_of(text))


def test_a_user_role_is_responder_unless_the_file_says_admin():
    text = DIRECTORY_YAML.replace("  - name: alice\n", "  - name: alice\n    role: admin\n")
    directory = parse_directory(text, {}, "d.yaml")
    assert directory.users["alice"].is_admin
    assert directory.users["bob"].role == "responder" and not directory.users["bob"].is_admin


def test_an_unknown_role_is_a_config_error_with_its_path():
    text = DIRECTORY_YAML.replace("  - name: alice\n", "  - name: alice\n    role: root\n")
    with pytest.raises(ConfigError) as caught:
        parse_directory(text, {}, "d.yaml")
    assert "d.yaml: users[0].role: expected one of responder, admin" in caught.value.problems
