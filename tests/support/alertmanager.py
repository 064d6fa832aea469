"""A real Prometheus Alertmanager (Debian's package) and amtool, for end-to-end tests."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time
import urllib.request

import yaml

from tests.support.process import free_port

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


class Alertmanager:
    def __init__(self, workdir: pathlib.Path, receivers: list[dict], route: dict) -> None:
        if BINARY is None or AMTOOL is None:
            raise RuntimeError(
                "prometheus-alertmanager and amtool are required "
                "(.ci/run installs them with apt-get)"
            )
        self.port = free_port()
        self.workdir = workdir
        config = {"route": route, "receivers": receivers}
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                BINARY,
                f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "am.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.workdir / "am.log").read_text()[-2000:]) from None
            time.sleep(0.05)  # polling a starting server's readiness

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def amtool(self, *args: str) -> None:
        """Run `amtool alert add ...` (and the like) against this Alertmanager."""
        subprocess.run(
            [AMTOOL, f"--alertmanager.url={self.url}", *args],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def add(self, *labels: str, end: str | None = None) -> None:
        args = ["alert", "add", *labels, "--annotation=summary=" + " ".join(labels)]
        if end is not None:
            args.append(f"--end={end}")
        self.amtool(*args)
