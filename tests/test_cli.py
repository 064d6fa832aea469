"""`python app.py`: serve with the shipped files, check-config and migrate, exit codes."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import stat
import subprocess
import sys

import aiohttp
import pytest
from argon2 import PasswordHasher

from tests.support.factories import DATA
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.ui import csrf_of


@pytest.fixture
def env_file(tmp_path):
    return tmp_path / "state" / "oncall.env"  # its directory does not exist yet


@pytest.fixture
def service_env(database_env, key_prefix, tmp_path, env_file):
    return {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        # This test's own: never the checkout's data/oncall.env or key.
        "ONCALL_DIRECTORY_ENV_FILE": str(env_file),
        "ONCALL_SECURITY_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
    }


@pytest.fixture
def initialised_env(service_env):
    """`service_env` once `python app.py init` has written its env file."""
    result = run_cli("init", env=service_env)
    assert result.returncode == 0, result.stderr
    return service_env


def run_cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        input=stdin,
        timeout=60,
    )


def read_env(path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


def test_init_writes_a_private_env_file_with_a_token_per_variable(service_env, env_file):
    result = run_cli("init", env=service_env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    tokens = read_env(env_file)
    assert set(tokens) == {"AM_TOKEN", "ALICE_TOKEN", "ALICE_WEBHOOK_SECRET", "BOB_TOKEN"}
    assert all(len(token) >= 32 for token in tokens.values())
    assert len(set(tokens.values())) == 4
    assert str(env_file) in result.stdout and "set -a" in result.stdout
    assert not any(token in result.stdout for token in tokens.values())  # only where they are


def test_init_is_idempotent_and_never_changes_a_token(service_env, env_file):
    assert run_cli("init", env=service_env).returncode == 0
    before = env_file.read_text()
    again = run_cli("init", env=service_env)
    assert again.returncode == 0, again.stderr
    assert env_file.read_text() == before
    # A variable missing from the file (the directory gained one) is added; the rest stay.
    tokens = read_env(env_file)
    env_file.write_text(before.replace(f"BOB_TOKEN={tokens['BOB_TOKEN']}\n", ""))
    assert run_cli("init", env=service_env).returncode == 0
    after = read_env(env_file)
    assert set(after) == set(tokens) and after["BOB_TOKEN"] != tokens["BOB_TOKEN"]
    assert {k: v for k, v in after.items() if k != "BOB_TOKEN"} == {
        k: v for k, v in tokens.items() if k != "BOB_TOKEN"
    }


def test_init_leaves_variables_the_environment_sets_alone(service_env, env_file):
    env = {**service_env, "AM_TOKEN": "am-token-from-the-environment-0123456789"}
    assert run_cli("init", env=env).returncode == 0
    assert "AM_TOKEN" not in read_env(env_file)


def test_without_init_start_up_says_to_run_it(service_env, env_file):
    result = run_cli("check-config", env=service_env)
    assert result.returncode == 1
    assert "oncall.example.yaml: users[0].api_token: environment variable ALICE_TOKEN" in (
        result.stderr
    )
    assert f"run `python app.py init` to generate it into {env_file}" in result.stderr


async def test_the_service_runs_with_the_shipped_files_after_init(service_env, tmp_path, env_file):
    """The README's command 1 and its "Try it" block, on a fresh checkout."""
    init = run_cli("init", env=service_env)
    assert init.returncode == 0
    password = _printed_password(init.stdout, "alice")
    tokens = read_env(env_file)
    service = ServiceProcess(service_env, tmp_path / "oncall.log")
    await service.start()
    payload = (DATA / "am_firing_two.json").read_bytes()
    try:
        # unsafe: keeps the session cookie of an IP address (127.0.0.1), as browsers do
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(f"{service.url}/health") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
            for published in (
                "example-alertmanager-token-0123456789",
                "example-alertmanager-token",
            ):
                async with session.post(
                    f"{service.url}/api/v1/integrations/alertmanager",
                    data=payload,
                    headers={
                        "Authorization": f"Bearer {published}",
                        "Content-Type": "application/json",
                    },
                ) as response:
                    assert response.status == 401
            async with session.post(
                f"{service.url}/api/v1/integrations/alertmanager",
                data=payload,
                headers={
                    "Authorization": f"Bearer {tokens['AM_TOKEN']}",
                    "Content-Type": "application/json",
                },
            ) as response:
                assert response.status == 200
                [incident_id] = (await response.json())["incidents"]
            async with session.get(
                f"{service.url}/api/v1/incidents",
                headers={"Authorization": "Bearer example-alice-token-0123456789abcdef"},
            ) as response:
                assert response.status == 401
            async with session.get(
                f"{service.url}/api/v1/incidents",
                headers={"Authorization": f"Bearer {tokens['ALICE_TOKEN']}"},
            ) as response:
                listed = (await response.json())["incidents"]
            assert [i["id"] for i in listed] == [incident_id]
            assert listed[0]["title"] == "DiskFull"
            # The web UI, with the password init printed.
            await _log_in(session, service.url, "alice", password)
            async with session.get(f"{service.url}/") as response:
                assert response.status == 200
                assert f'href="/incidents/{incident_id}"' in await response.text()
    finally:
        assert service.stop() == 0
    log = (tmp_path / "oncall.log").read_text()
    assert not any(token in log for token in tokens.values())
    assert password not in log
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_json_logs_are_one_object_per_line(initialised_env, tmp_path):
    service = ServiceProcess(
        {**initialised_env, "ONCALL_SERVER_LOG_FORMAT": "json"}, tmp_path / "oncall.log"
    )
    await service.start()
    service.stop()
    lines = [line for line in (tmp_path / "oncall.log").read_text().splitlines() if line]
    entries = [json.loads(line) for line in lines]
    assert any(e["msg"] == "oncall started" for e in entries)
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)


def test_check_config_accepts_the_shipped_files_after_init(initialised_env):
    result = run_cli("check-config", env=initialised_env)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_config_lists_every_problem_and_exits_1(service_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("users:\n  - {name: alice, time_zone: Mars/Base}\nroutes: []\nextra: 1\n")
    env = {**service_env, "ONCALL_SERVER_PORT": "http", "ONCALL_DIRECTORY_PATH": str(bad)}
    result = run_cli("check-config", env=env)
    assert result.returncode == 1
    for fragment in ("[server] port", "time_zone", "extra: unknown key", "routes"):
        assert fragment in result.stderr, fragment


def test_bad_settings_stop_start_up_with_exit_code_2(service_env):
    result = run_cli(env={**service_env, "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "often"})
    assert result.returncode == 2
    assert "[scheduler] reconcile_interval" in result.stderr


def test_migrate_brings_the_database_up_to_date(initialised_env):
    for _ in range(2):  # and is harmless when it already is
        result = run_cli("migrate", env=initialised_env)
        assert result.returncode == 0, result.stderr


def _printed_password(stdout: str, user: str) -> str:
    """Return the password `init` printed for `user`; fails the test when it printed none."""
    found = re.search(rf"as {user} with the password (\S+)", stdout)
    assert found, stdout
    return found.group(1)


async def _log_in(session: aiohttp.ClientSession, url: str, user: str, password: str) -> None:
    """Log in through the login form, as a browser does."""
    async with session.get(f"{url}/login") as response:
        token = csrf_of(await response.text())
    form = {"_csrf": token, "user": user, "password": password, "next": "/"}
    async with session.post(f"{url}/login", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()


def _stored_hash(database_env: dict[str, str], user: str) -> str | None:
    """Return `user`'s password hash as the database holds it (SQLite only)."""
    path = database_env["ONCALL_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT hash FROM passwords WHERE user_name = ?", (user,)).fetchone()
    return None if row is None else str(row[0])


def test_init_prints_a_password_only_while_nobody_has_one(service_env):
    first = run_cli("init", env=service_env)
    assert "with the password" in first.stdout
    again = run_cli("init", env=service_env)
    assert again.returncode == 0
    assert "with the password" not in again.stdout


def test_set_password_reads_the_password_from_standard_input(initialised_env, database_env):
    if "sqlite" not in database_env["ONCALL_DATABASE_URL"]:
        pytest.skip("reads the SQLite file directly")
    result = run_cli("set-password", "bob", env=initialised_env, stdin="a long new password\n")
    assert result.returncode == 0, result.stderr
    assert "a long new password" not in result.stdout + result.stderr
    stored = _stored_hash(database_env, "bob")
    assert stored is not None and stored.startswith("$argon2")
    assert PasswordHasher().verify(stored, "a long new password")


def test_set_password_generates_and_prints_one(initialised_env, database_env):
    if "sqlite" not in database_env["ONCALL_DATABASE_URL"]:
        pytest.skip("reads the SQLite file directly")
    result = run_cli("set-password", "bob", "--generate", env=initialised_env)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert len(printed) >= 20
    assert PasswordHasher().verify(_stored_hash(database_env, "bob") or "", printed)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("set-password", "mallory"), "a long enough password\n", "user: no user named"),
        (("set-password", "bob"), "short\n", "password: must be at least"),
        (("set-password",), "", "set-password needs a USER"),
    ],
)
def test_set_password_refuses_an_unknown_user_and_a_short_password(
    initialised_env, args, stdin, message
):
    result = run_cli(*args, env=initialised_env, stdin=stdin)
    assert result.returncode != 0
    assert message in result.stderr
