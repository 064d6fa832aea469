"""One instance per SQLite database: an exclusive lock on a file beside it, held for the
process's whole life.

SQLite has one writer, so a second process on the same file would run a second scheduler
over the same job stores. The kernel drops a `flock` when its process dies, however it
dies, so a restart after a crash never waits, unlike a lease.
"""

from __future__ import annotations

import fcntl
import os
import socket

from oncall.clock import isoformat, system_clock

SUFFIX = ".instance"  # the lock file is the database's path with this added


class HeldElsewhere(Exception):
    """Another process holds the database; `holder` says which, as it wrote it."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(path, holder)
        self.path = path
        self.holder = holder


def sqlite_path(url: str) -> str | None:
    """Return the file of a SQLite URL, or None for an in-memory database."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return os.path.abspath(path)


def lock_path(db_path: str) -> str:
    """Return the lock file of the database at `db_path`."""
    return db_path + SUFFIX


def describe_me() -> str:
    """Return how this process describes itself in the lock file."""
    started = isoformat(system_clock().replace(microsecond=0))
    return f"pid {os.getpid()} on {socket.gethostname()}, since {started}"


class SoleInstance:
    """The lock of one database; `acquire` takes it or raises HeldElsewhere."""

    def __init__(self, db_path: str) -> None:
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write who holds it; raises HeldElsewhere when another process
        has it, OSError when the file cannot be made."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise HeldElsewhere(self.path, holder or "another process") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, describe_me().encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the file drops it); the file stays."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 500, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def holder(db_path: str) -> str | None:
    """Return who holds the database at `db_path` (what the holder wrote), or None when no
    process does."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
