"""No default secrets: tokens and secrets ever published in the repository are refused, with
the key that holds them; tokens are long; `new-token` makes one; the database password never
appears in a message."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError
from oncall.settings import load_settings
from tests.support.db import BACKENDS, POSTGRES_URL
from tests.support.factories import DIRECTORY_YAML
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT

EXAMPLE = ROOT / "oncall.example.yaml"
# The values the example directory and the README have shipped, generation by generation
# (the second padded to the 32-character floor).
GENERATIONS = {
    "first": {
        "AM_TOKEN": "example-alertmanager-token",
        "ALICE_TOKEN": "example-alice-token",
        "BOB_TOKEN": "example-bob-token",
        "ALICE_WEBHOOK_SECRET": "s3cret",
    },
    "padded": {
        "AM_TOKEN": "example-alertmanager-token-0123456789",
        "ALICE_TOKEN": "example-alice-token-0123456789abcdef",
        "BOB_TOKEN": "example-bob-token-0123456789abcdefgh",
        "ALICE_WEBHOOK_SECRET": "s3cret",
    },
}
KEYS = {
    "AM_TOKEN": "integrations[0].token",
    "ALICE_TOKEN": "users[0].api_token",
    "ALICE_WEBHOOK_SECRET": "users[0].contacts[1].secret",
    "BOB_TOKEN": "users[1].api_token",
}
PASSWORD = "hunter2-db-password"


def example_with_fallbacks(values: dict[str, str]) -> str:
    """Return the shipped example as an older version shipped it: each token and the
    webhook secret falling back to a published value (what a copy of it still holds)."""
    text = EXAMPLE.read_text()
    for name, value in values.items():
        if name == "ALICE_WEBHOOK_SECRET":
            text = re.sub(r'secret: "[^"]*"', f'secret: "${{{name}:-{value}}}"', text)
        else:
            text = re.sub(rf'"\$\{{{name}[^}}]*\}}"', f'"${{{name}:-{value}}}"', text)
    return text


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_directory(text, environ or {}, "oncall.yaml")
    return caught.value.problems


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_a_copy_of_an_older_example_is_refused_naming_each_published_secret(generation):
    found = problems(example_with_fallbacks(GENERATIONS[generation]))
    assert len(found) == len(KEYS)
    for path in KEYS.values():
        [problem] = [p for p in found if p.startswith(f"oncall.yaml: {path}: ")]
        assert "published in the oncall repository" in problem
        assert "python app.py new-token" in problem


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_published_values_given_by_the_environment_are_refused_too(generation):
    found = problems(EXAMPLE.read_text(), GENERATIONS[generation])
    assert sorted(p.split(": ")[1] for p in found) == sorted(KEYS.values())


def test_a_token_one_character_short_is_refused():
    text = DIRECTORY_YAML.replace("am-token-0123456789abcdefghijklmnopqrstuv", "x" * 31)
    assert problems(text) == [
        "oncall.yaml: integrations[0].token: token must have at least 32 characters"
    ]


# (case, the webhook secret, a fragment of the problem or None when accepted)
WEBHOOK_SECRETS = [
    ("the example's old secret", "s3cret", "published in the oncall repository"),
    ("too short to sign with", "fifteen-chars-x", "at least 16 characters"),
    ("long enough", "sixteen-chars-xy", None),
    ("none: pages go unsigned", "", None),
]


@pytest.mark.parametrize(
    ("secret", "expected"), [c[1:] for c in WEBHOOK_SECRETS], ids=[c[0] for c in WEBHOOK_SECRETS]
)
def test_webhook_secrets_that_anyone_knows_or_can_guess_are_refused(secret, expected):
    text = DIRECTORY_YAML.replace(
        "- {type: email, to: alice@example.com}",
        f'- {{type: webhook, url: "http://127.0.0.1:9/hook", secret: "{secret}"}}',
    )
    if expected is None:
        parse_directory(text, {}, "oncall.yaml")
        return
    [problem] = problems(text)
    assert problem.startswith("oncall.yaml: users[0].contacts[0].secret: ")
    assert expected in problem


def test_every_token_the_repository_shows_is_a_placeholder_or_refused():
    """A literal token in what a newcomer copies (the example, the README, the settings,
    the container files) must be refused, or a copy of it would open the instance."""
    from oncall.directory.parse import PUBLISHED_SECRETS

    literal = re.compile(
        r"(?:Bearer |(?:token|api_token|secret|credentials): *)['\"]?([^\s'\"`}<>]+)"
    )
    for name in ("README.md", "oncall.example.yaml", "settings.ini", "tests/data/README.md"):
        for value in literal.findall((ROOT / name).read_text()):
            assert value.startswith("$") or value in PUBLISHED_SECRETS, (name, value)
    assert {v for g in GENERATIONS.values() for v in g.values()} <= PUBLISHED_SECRETS


@pytest.fixture
def service_env(database_env, key_prefix):
    # The shipped settings.ini as it is: the published values come from the environment,
    # which wins over any env file, and the service stops before it reads or writes a key.
    return {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def test_check_config_refuses_the_published_tokens_naming_each_key(service_env):
    env = {**service_env, **GENERATIONS["padded"]}
    result = run_cli("check-config", env=env)
    assert result.returncode == 1, result.stdout
    for path in KEYS.values():
        assert f"oncall.example.yaml: {path}: " in result.stderr, path
    assert "valid" not in result.stdout


async def test_the_service_refuses_to_start_with_the_published_tokens(service_env, tmp_path):
    service = ServiceProcess({**service_env, **GENERATIONS["padded"]}, tmp_path / "oncall.log")
    try:
        with pytest.raises(RuntimeError, match="exited with 2"):
            await service.start()
    finally:
        service.stop()
    log = (tmp_path / "oncall.log").read_text()
    for path in KEYS.values():
        assert f"oncall.example.yaml: {path}: " in log, path


def test_new_token_prints_a_fresh_token_each_time():
    first, second = (run_cli("new-token", env={}) for _ in range(2))
    assert first.returncode == second.returncode == 0, first.stderr
    tokens = [first.stdout.strip(), second.stdout.strip()]
    assert tokens[0] != tokens[1]
    for token in tokens:
        assert len(token) >= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
        directory = parse_directory(
            DIRECTORY_YAML.replace("am-token-0123456789abcdefghijklmnopqrstuv", token), {}
        )  # accepted as a token
        assert directory.integrations["prometheus"].token == token


# The database password: never shown, whichever message names the URL.


def test_a_bad_database_url_is_reported_with_its_password_masked():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "ONCALL_SETTINGS": "/dev/null",
                "ONCALL_DATABASE_URL": f"postgres://oncall:{PASSWORD}@db.internal/oncall",
            }
        )
    [problem] = caught.value.problems
    assert "[database] url" in problem and "oncall:***@db.internal/oncall" in problem
    assert PASSWORD not in problem


def test_a_database_url_with_a_bad_port_is_a_settings_error_with_the_password_masked():
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "ONCALL_SETTINGS": "/dev/null",
                "ONCALL_DATABASE_URL": f"postgresql+asyncpg://oncall:{PASSWORD}@db:pg/oncall",
            }
        )
    [problem] = caught.value.problems
    assert "[database] url" in problem and "port" in problem
    assert PASSWORD not in problem


def test_a_password_with_an_at_sign_is_masked_whole():
    from oncall.settings import mask_url

    assert mask_url("postgres://u:pa@ss/w@host/db") == "postgres://u:***@host/db"
    assert mask_url("sqlite+aiosqlite:///data/oncall.db") == "sqlite+aiosqlite:///data/oncall.db"
    assert mask_url("postgresql+asyncpg://u@host/db") == "postgresql+asyncpg://u@host/db"


@pytest.mark.parametrize("command", ["check-config", "serve", "migrate"])
def test_no_command_prints_the_database_password(command):
    env = {"ONCALL_DATABASE_URL": f"postgres://oncall:{PASSWORD}@127.0.0.1/oncall"}
    result = run_cli(command, env=env)
    assert result.returncode in (1, 2)
    assert "[database] url" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="a SQLite URL has no password")
async def test_a_database_error_never_shows_the_password(caplog):
    from sqlalchemy import exc, make_url

    from oncall.db.engine import Database, make_engine
    from oncall.errors import Unavailable
    from oncall.settings import DatabaseSettings

    url = make_url(POSTGRES_URL).set(password=PASSWORD).render_as_string(hide_password=False)
    db = Database(make_engine(DatabaseSettings(url, "")))

    def fails(_conn: object) -> None:
        # What a driver may say: its error quoting the connection parameters it was given.
        raise exc.DBAPIError("SELECT 1", {}, Exception(f"rejected: password={PASSWORD}"))

    try:
        with pytest.raises(Unavailable) as caught:
            await db.run(fails)
    finally:
        await db.close()
    assert PASSWORD not in str(caught.value) and PASSWORD not in caplog.text
    assert "rejected: password=***" in caplog.text
