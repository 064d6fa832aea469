"""A PostgreSQL cluster of the test's own (initdb + pg_ctl), on a free port, that the test
may stop, start and restart without touching the shared server on 5432."""

from __future__ import annotations

import asyncio
import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

from tests.support.process import free_port

# Debian's layout: /usr/lib/postgresql/<major>/bin; the newest major installed wins.
_BIN_DIRS = sorted(
    glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(pathlib.Path(p).parent.name)
)
OWNER = "postgres"  # PostgreSQL refuses to run as root: as root, its files are this user's


class PostgresCluster:
    """One throwaway cluster, trust authentication, listening on 127.0.0.1 only.

    Its directory is made with `tempfile.mkdtemp` rather than under pytest's `tmp_path`:
    pytest's base folder is root's with mode 0700, where the `postgres` user cannot reach.
    """

    def __init__(self) -> None:
        if not _BIN_DIRS:
            raise RuntimeError(
                "PostgreSQL's server binaries are required (.ci/run installs them with apt-get)"
            )
        self.bin = pathlib.Path(_BIN_DIRS[-1])
        self.port = free_port()
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="oncall-pg-"))
        self.data = self.workdir / "data"
        self.log = self.workdir / "postgres.log"
        self._as_owner = os.geteuid() == 0
        if self._as_owner:
            entry = pwd.getpwnam(OWNER)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self.running = False

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the cluster's `postgres` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_owner:
            command = ["runuser", "-u", OWNER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{result.stderr}\n{log}")

    def init(self) -> None:
        """initdb: trust authentication for the `postgres` superuser."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _options(self) -> str:
        # Its Unix socket goes to its own folder (not /var/run/postgresql, the shared
        # server's); fsync off: the test kills nothing but the server's clients.
        return (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.workdir} -c fsync=off"
        )

    def start(self) -> None:
        """Start and return once it accepts connections (pg_ctl -w)."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-w",
            "-t", "60", "start",
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop: `fast` disconnects every client and rolls their transactions back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    async def astart(self) -> None:
        """`start` off the event loop, so the test's own servers keep answering."""
        await asyncio.to_thread(self.start)

    async def astop(self, mode: str = "fast") -> None:
        """`stop` off the event loop."""
        await asyncio.to_thread(self.stop, mode)

    def destroy(self) -> None:
        """Stop it if running and delete its files."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
