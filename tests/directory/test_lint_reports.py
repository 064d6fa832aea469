"""Where the lint's warnings are told: `check-config` (after the problems; `--strict` fails
on them), the log at start-up and on reload. Warnings never fail anything else."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from tests.support.factories import ALICE_TOKEN, DIRECTORY_YAML
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT

ADMIN = {"Authorization": f"Bearer {ALICE_TOKEN}"}
ADMIN_DIRECTORY = DIRECTORY_YAML.replace("- name: alice\n", "- name: alice\n    role: admin\n")
# Two warnings: a user nobody can reach, a policy nothing uses.
WARNED = ADMIN_DIRECTORY.replace("users:\n", "users:\n  - {name: carol}\n").replace(
    "routes:\n",
    "  - {name: spare, levels: [{notify: ['user:bob'], escalate_after: 5m}]}\nroutes:\n",
)
CAROL = "users.carol.contacts: carol has no contact: a page to carol reaches nobody"
SPARE = "policies.spare: nothing uses it: no route names it"


def check_config(
    directory: pathlib.Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Return how `python app.py check-config ARGS` ended with `directory` as the file."""
    own = {
        "ONCALL_DIRECTORY_PATH": str(directory),
        "ONCALL_DIRECTORY_ENV_FILE": str(directory.parent / "oncall.env"),
        "ONCALL_SECURITY_SECRET_KEY_FILE": str(directory.parent / "secret.key"),
    }
    return subprocess.run(
        [sys.executable, "app.py", "check-config", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **own, **env},
        timeout=60,
    )


@pytest.fixture
def warned_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "oncall.yaml"
    path.write_text(WARNED)
    return path


def test_check_config_prints_each_warning_with_its_path_and_passes(warned_file):
    result = check_config(warned_file)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"warning: {warned_file}: {CAROL}", f"warning: {warned_file}: {SPARE}"]
    assert lines[2].endswith(
        "are valid: 1 integrations, 3 users, 0 schedules, 2 policies, 2 routes; 2 warnings"
    )
    assert result.stderr == ""


def test_check_config_strict_fails_on_warnings(warned_file):
    result = check_config(warned_file, "--strict")
    assert result.returncode == 1
    assert f"warning: {warned_file}: {CAROL}" in result.stdout


def test_check_config_strict_passes_the_shipped_example(tmp_path):
    names = ("AM_TOKEN", "ALICE_TOKEN", "BOB_TOKEN", "ALICE_WEBHOOK_SECRET")
    tokens = {name: f"{name.lower()}-0123456789abcdefghijklmnopqrstuv" for name in names}
    example = tmp_path / "oncall.yaml"
    example.write_text((ROOT / "oncall.example.yaml").read_text())
    result = check_config(example, "--strict", **tokens)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("; no warnings")


def test_check_config_prints_the_warnings_after_the_settings_problems(warned_file):
    result = check_config(warned_file, ONCALL_SERVER_PORT="http")
    assert result.returncode == 1
    assert "[server] port" in result.stderr
    assert f"warning: {warned_file}: {CAROL}" in result.stdout


async def test_the_service_logs_the_warnings_at_start_up_and_starts(
    database_env, key_prefix, tmp_path, warned_file
):
    env = {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        "ONCALL_DIRECTORY_PATH": str(warned_file),
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    await service.start()
    assert service.stop() == 0
    log = (tmp_path / "oncall.log").read_text()
    assert f"directory warning: {CAROL}" in log and f"directory warning: {SPARE}" in log


async def test_a_reload_logs_the_new_files_warnings(
    make_client: Any, directory_file: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(directory=ADMIN_DIRECTORY)
    directory_file.write_text(WARNED)
    with caplog.at_level(logging.WARNING, logger="oncall.directory"):
        response = await client.post("/-/reload", headers=ADMIN)
    assert response.status == 200  # warnings never refuse a file
    warned = [(r.levelname, r.getMessage(), r.__dict__.get("path")) for r in caplog.records]
    assert ("WARNING", f"directory warning: {CAROL}", "users.carol.contacts") in warned
    assert ("WARNING", f"directory warning: {SPARE}", "policies.spare") in warned
