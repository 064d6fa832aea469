"""SIGHUP while `python app.py` starts: the process survives, and a reload asked for during
start-up is applied once the service is ready."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp

from tests.support.factories import ALICE_TOKEN, fast_directory
from tests.support.process import READY_TIMEOUT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT

NEW_TOKEN = "dave-token-0123456789abcdefghijklmnopqrstuv"


def caught_signals(pid: int) -> set[int]:
    """Return the signals process `pid` has a handler for (`SigCgt` in /proc/PID/status);
    empty once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    mask = int(line.split()[1], 16)
                    return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    except (FileNotFoundError, ProcessLookupError):
        pass
    return set()


async def healthy(session: aiohttp.ClientSession, url: str) -> bool:
    """Return whether /health answers 200 (False while nothing listens yet)."""
    try:
        async with session.get(f"{url}/health") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


def with_dave(directory: str) -> str:
    """Return the directory with one more user, dave, whose token only the new file has."""
    return directory.replace(
        "users:\n", f'users:\n  - {{name: dave, api_token: "{NEW_TOKEN}", contacts: []}}\n', 1
    )


async def test_sighup_during_start_up_neither_kills_it_nor_is_lost(
    tmp_path: Any, database_env: dict[str, str], key_prefix: str
) -> None:
    directory = tmp_path / "oncall.yaml"
    original = fast_directory(levels=("1h", "1h"), repeat=0)
    directory.write_text(original)
    env = {
        **database_env,
        "ONCALL_SETTINGS": "/dev/null",
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(directory),
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    with open(service.log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=service.root,
            env=service.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service.proc = proc
    sent = changed_after = 0
    try:
        # No program can handle a signal before its interpreter has run any of its code, so
        # the first SIGHUP goes out as soon as the process has a SIGHUP handler, or (on code
        # that installs it late) as soon as aiohttp's runner has caught SIGTERM: start-up
        # proper (migrations, Redis, the first reconcile) begins right after.
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while True:
                assert proc.poll() is None, (
                    f"oncall died ({proc.returncode}) after {sent} SIGHUPs:\n"
                    + service.log_path.read_text()[-3000:]
                )
                caught = caught_signals(proc.pid)
                if caught & {signal.SIGHUP, signal.SIGTERM}:
                    if signal.SIGTERM in caught and not changed_after:
                        # The directory was read long before the runner started: from now
                        # on only a reload can bring dave in.
                        directory.write_text(with_dave(original))
                        changed_after = sent + 1
                    os.kill(proc.pid, signal.SIGHUP)
                    sent += 1
                    if await healthy(session, service.url):
                        break
                assert time.monotonic() < deadline, "oncall did not become healthy"
                await asyncio.sleep(0.005)  # polling an external process, not synchronising
            assert changed_after, "never saw the runner start"
            assert proc.poll() is None
            assert await healthy(session, service.url)
            # The new file is in effect: the token only it has is accepted.
            for token, expected in ((NEW_TOKEN, 200), (ALICE_TOKEN, 200)):
                async with session.get(
                    f"{service.url}/api/v1/incidents", headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    assert response.status == expected, (token, await response.text())
        assert service.stop() == 0  # and it still shuts down cleanly
        # The change was applied by the reload deferred to the end of start-up, not only by
        # a later SIGHUP: the SIGHUP sent right after the change went out when aiohttp's
        # runner had just started, and migrations and the first reconcile come after that.
        lines = service.log_path.read_text().splitlines()
        [deferred] = [i for i, line in enumerate(lines) if "asked for during start-up" in line]
        # The reload parses in a worker thread, so other lines may come in between.
        outcome = next(line for line in lines[deferred:] if "directory reload" in line)
        assert "directory reloaded" in outcome
        # It read the file this test changed meanwhile, unless the test (polling from a
        # loaded machine) wrote it only after: then a later SIGHUP's reload brought dave in.
        assert any("directory reloaded" in line and "users=4" in line for line in lines[deferred:])
    finally:
        service.stop()
