"""Runs `python app.py` as a real subprocess on a free port, for end-to-end and crash tests."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import time

import aiohttp

from tests.support.ops import OPS_ENV

ROOT = pathlib.Path(__file__).parent.parent.parent  # the checkout: where app.py is
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def own_files(folder: pathlib.Path) -> dict[str, str]:
    """Return the settings that keep the env file and a generated key in `folder`."""
    return {
        "ONCALL_DIRECTORY_ENV_FILE": str(folder / "oncall.env"),
        "ONCALL_SECURITY_SECRET_KEY_FILE": str(folder / "secret.key"),
    }


class ServiceProcess:
    """One oncall process; `env` is added to this process's environment. `root` is the
    checkout whose app.py runs (another one's, to compare two versions). `tls` is a client
    context trusting the service's certificate, for a service that serves HTTPS."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: pathlib.Path,
        root: pathlib.Path = ROOT,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.root = root
        self.tls = tls
        self.port = free_port()
        self.env = {
            **os.environ,
            **OPS_ENV,  # /health's details and /metrics answer `tests.support.ops.OPS`
            # Beside the log, never the checkout's data/ (unless the test says otherwise);
            # an older checkout (bench/compare.py's baseline) would refuse the keys.
            **(own_files(log_path.parent) if root == ROOT else {}),
            **env,
            "ONCALL_SERVER_PORT": str(self.port),
            "ONCALL_SERVER_HOST": "127.0.0.1",
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start the process and return once it answers /-/healthy; raises if it dies."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "app.py"],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        connector = aiohttp.TCPConnector(ssl=self.tls) if self.tls else None
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"oncall exited with {self.proc.returncode}:\n"
                        + self.log_path.read_text()[-3000:]
                    )
                try:
                    async with session.get(f"{self.url}/-/healthy") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        "oncall did not become healthy:\n" + self.log_path.read_text()[-3000:]
                    )
                await asyncio.sleep(0.05)  # polling a readiness probe, not synchronising

    def kill(self) -> None:
        """SIGKILL: no cleanup runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
