"""backup: an online copy of the SQLite database through the backup API, one snapshot even
while another process keeps writing, checked, written beside FILE and renamed; an existing
FILE is kept unless forced; PostgreSQL is pointed at pg_dump."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oncall.db.backup import BackupError, backup

WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA busy_timeout=5000")
print("writing", flush=True)
while True:  # one row per transaction, as fast as it commits
    conn.execute("INSERT INTO rows (body) VALUES (randomblob(200))")
"""


def make_database(path: Path, rows: int = 2000) -> None:
    """A WAL database of a few hundred pages, as the service keeps it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO rows (body) VALUES (randomblob(500))", [()] * rows)
    conn.execute("COMMIT")
    conn.close()


def count(path: Path | str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM rows").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "oncall.db"
    make_database(path)
    return path


@pytest.fixture
def writer(database: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process inserting rows into the database, one transaction each."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(database)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    yield proc
    proc.kill()
    proc.wait()


def test_the_copy_has_every_row_and_passes_the_integrity_check(database, tmp_path):
    done = backup(str(database), str(tmp_path / "copy.db"))
    assert (done.integrity, done.restarts) == ("ok", 0)
    assert done.size == (tmp_path / "copy.db").stat().st_size
    assert count(tmp_path / "copy.db") == 2000
    # One self-contained file: a rollback journal, nothing beside it.
    conn = sqlite3.connect(tmp_path / "copy.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("copy", ".copy"))) == [
        "copy.db"
    ]


def test_a_copy_while_another_process_writes_is_one_snapshot_and_does_not_restart(
    database, writer, tmp_path
):
    before = count(database)
    # Small steps, so that the writer commits many times between two of them.
    done = backup(str(database), str(tmp_path / "copy.db"), pages=4, pause=0.005)
    after = count(database)
    copied = count(tmp_path / "copy.db")
    assert done.integrity == "ok"
    assert done.steps > 50
    assert done.restarts == 0
    assert before <= copied < after, "the writer went on writing meanwhile"


def test_an_existing_file_is_kept_unless_forced(database, tmp_path):
    existing = tmp_path / "copy.db"
    existing.write_text("an older backup")
    with pytest.raises(BackupError, match="exists; add --force to replace it"):
        backup(str(database), str(existing))
    assert existing.read_text() == "an older backup"
    backup(str(database), str(existing), force=True)
    assert count(existing) == 2000


def test_the_database_itself_is_refused_even_when_forced(database):
    with pytest.raises(BackupError, match="is the database itself"):
        backup(str(database), str(database), force=True)
    assert count(database) == 2000


def test_a_missing_database_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(BackupError, match="no SQLite database at"):
        backup(str(tmp_path / "none.db"), str(tmp_path / "copy.db"))
    assert list(tmp_path.iterdir()) == []


def test_the_command_refuses_postgresql_pointing_at_pg_dump(monkeypatch, tmp_path, capsys):
    from oncall.cli import main

    monkeypatch.setenv("ONCALL_SETTINGS", "/dev/null")
    monkeypatch.setenv("ONCALL_DATABASE_URL", "postgresql+asyncpg://oncall@db/oncall")
    assert main(["backup", str(tmp_path / "copy.db")]) == 1
    assert "back it up with pg_dump" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_command_prints_the_size_and_the_integrity_check(
    monkeypatch, database, tmp_path, capsys
):
    from oncall.cli import main

    monkeypatch.setenv("ONCALL_SETTINGS", "/dev/null")
    monkeypatch.setenv("ONCALL_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    copy = tmp_path / "copy.db"
    assert main(["backup", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"backed up {database} to {copy}: " in out
    assert f"({copy.stat().st_size} bytes)" in out and "integrity_check: ok" in out
    assert main(["backup", str(copy)]) == 1
    assert "exists; add --force" in capsys.readouterr().err
