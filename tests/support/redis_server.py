"""A redis-server of the test's own, on a free port, that the test may stop and flush."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import redis

from tests.support.process import free_port

# The shared Redis every machine runs; a test that breaks Redis starts a RedisServer.
REDIS_HOST = os.environ.get("REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))


def delete_keys(prefix: str, host: str = REDIS_HOST, port: int = REDIS_PORT) -> None:
    """Delete the keys under `prefix` (a test's own), and only those."""
    client = redis.Redis(host=host, port=port)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class RedisServer:
    def __init__(self, workdir: pathlib.Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart, empty) on the same port; return once it answers PING."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                time.sleep(0.02)  # polling a starting server's readiness
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: the socket stays open and nothing answers (a stuck or swapping Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def flushall(self) -> None:
        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def job_ids(self, key_prefix: str, store: str = "escalation") -> set[str]:
        client = redis.Redis(port=self.port)
        try:
            return {k.decode() for k in client.hkeys(f"{key_prefix}:{store}:jobs")}
        finally:
            client.close()
