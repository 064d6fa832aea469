"""An online copy of the SQLite database (`python app.py backup FILE`), the service running.

SQLite's backup API copies the database page by page, pausing between steps so the
service's own I/O gets its turns. The copying connection holds one read transaction for
the whole copy: in WAL mode that snapshot does not hold up the service's writers, and it
keeps the copy consistent without restarting, whereas a backup that reads each step in a
transaction of its own starts over whenever another process has written in between, and
under a steady stream of alerts may not finish at all.

The copy is written to a temporary file beside FILE, switched to a rollback journal (one
self-contained file), checked with `PRAGMA integrity_check`, flushed to disk and only then
renamed to FILE.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass

PAGES_PER_STEP = 256  # a MiB at SQLite's default page size
PAUSE = 0.01  # seconds between steps


class BackupError(Exception):
    """No backup was written; the message says why."""


@dataclass(frozen=True)
class Backup:
    """A finished copy."""

    path: str
    size: int  # bytes
    integrity: str  # PRAGMA integrity_check's answer: "ok" for a sound copy
    steps: int
    restarts: int  # times the copy started over (0: one snapshot throughout)
    seconds: float


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: str, temporary: str, pages: int, pause: float) -> tuple[int, int, str]:
    """Copy `source` into the new file `temporary`; return (steps, restarts, integrity)."""
    steps: list[int] = []
    restarts = 0

    def progress(_status: int, remaining: int, _total: int) -> None:
        nonlocal restarts
        if steps and remaining > steps[-1]:
            restarts += 1
        steps.append(remaining)

    # Read-only, so that the copy can never write the service's database.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout=5000")
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchall()  # takes the snapshot
        dst = sqlite3.connect(temporary, isolation_level=None)
        try:
            src.backup(dst, pages=pages, progress=progress, sleep=pause)
            src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode=DELETE")
            integrity = "\n".join(row[0] for row in dst.execute("PRAGMA integrity_check"))
        finally:
            dst.close()
    finally:
        src.close()
    return len(steps), restarts, integrity


def backup(
    source: str, path: str, force: bool = False, pages: int = PAGES_PER_STEP, pause: float = PAUSE
) -> Backup:
    """Copy the SQLite database at `source` to `path` and return the copy's figures.

    Raises BackupError (nothing written) when there is no database at `source`, `path`
    is the database itself, `path` exists and `force` is not set, or the copy fails its
    integrity check; sqlite3.Error or OSError when reading or writing fails (the
    temporary file is removed).
    """
    started = time.perf_counter()
    if not os.path.isfile(source):
        raise BackupError(f"no SQLite database at {source}")
    if os.path.exists(path):
        if os.path.samefile(path, source):
            raise BackupError(f"{path} is the database itself")
        if not force:
            raise BackupError(f"{path} exists; add --force to replace it")
        if os.path.isdir(path):
            raise BackupError(f"{path} is a directory")
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        steps, restarts, integrity = _copy(source, temporary, pages, pause)
        if integrity != "ok":
            raise BackupError(f"the copy fails PRAGMA integrity_check: {integrity}")
        _fsync(temporary)
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, *(temporary + end for end in ("-journal", "-wal", "-shm"))):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
    _fsync(folder)  # the rename itself
    return Backup(
        path, os.path.getsize(path), integrity, steps, restarts, time.perf_counter() - started
    )
