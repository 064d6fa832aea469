"""`python app.py`: serve with the shipped files, check-config and migrate, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest

from tests.support.factories import DATA
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT


@pytest.fixture
def service_env(database_env, key_prefix):
    return {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


async def test_the_service_runs_with_the_shipped_example_files(service_env, tmp_path):
    service = ServiceProcess(service_env, tmp_path / "oncall.log")
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{service.url}/health") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
            payload = (DATA / "am_firing_two.json").read_bytes()
            async with session.post(
                f"{service.url}/api/v1/integrations/alertmanager",
                data=payload,
                headers={
                    "Authorization": "Bearer example-alertmanager-token-0123456789",
                    "Content-Type": "application/json",
                },
            ) as response:
                assert response.status == 200
                [incident_id] = (await response.json())["incidents"]
            async with session.get(
                f"{service.url}/api/v1/incidents",
                headers={"Authorization": "Bearer example-alice-token-0123456789abcdef"},
            ) as response:
                listed = (await response.json())["incidents"]
            assert [i["id"] for i in listed] == [incident_id]
            assert listed[0]["title"] == "DiskFull"
    finally:
        assert service.stop() == 0
    log = (tmp_path / "oncall.log").read_text()
    assert (
        "example-alertmanager-token-0123456789" not in log
        and "example-alice-token-0123456789abcdef" not in log
    )


async def test_json_logs_are_one_object_per_line(service_env, tmp_path):
    service = ServiceProcess(
        {**service_env, "ONCALL_SERVER_LOG_FORMAT": "json"}, tmp_path / "oncall.log"
    )
    await service.start()
    service.stop()
    lines = [line for line in (tmp_path / "oncall.log").read_text().splitlines() if line]
    entries = [json.loads(line) for line in lines]
    assert any(e["msg"] == "oncall started" for e in entries)
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)


def test_check_config_accepts_the_shipped_files(service_env):
    result = run_cli("check-config", env=service_env)
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


def test_migrate_brings_the_database_up_to_date(service_env):
    for _ in range(2):  # and is harmless when it already is
        result = run_cli("migrate", env=service_env)
        assert result.returncode == 0, result.stderr
