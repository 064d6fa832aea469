"""`python app.py move-database --to URL [--schema NAME]` and `python app.py backup FILE
[--force]`: growing out of SQLite, and copying it while the service runs.

Exit codes: 0 done; 1 refused or failed, nothing written (move-database: nothing
committed); 2 the settings are invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from oncall.errors import ConfigError

if TYPE_CHECKING:
    from oncall.db.move import TableCopy

MOVE_HELP = "copy the configured SQLite database into an empty PostgreSQL database"
BACKUP_HELP = "copy the configured SQLite database to FILE while the service runs"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py")
    commands = parser.add_subparsers(dest="command", required=True)
    move = commands.add_parser("move-database", help=MOVE_HELP, description=MOVE_HELP)
    move.add_argument("--to", required=True, metavar="URL", help="postgresql+asyncpg://...")
    move.add_argument(
        "--schema", metavar="NAME", help="the target's schema (default: [database] schema)"
    )
    backup = commands.add_parser("backup", help=BACKUP_HELP, description=BACKUP_HELP)
    backup.add_argument("file", metavar="FILE")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    return parser


def _fail(command: str, message: str) -> int:
    print(f"{command}: {message}", file=sys.stderr)
    return 1


def move_database(to: str, schema: str | None) -> int:
    """Move the configured SQLite database to `to`; print the tables and the settings to
    change; return the exit code."""
    from oncall.db.move import Mismatch, MoveError, move_database
    from oncall.settings import DatabaseSettings, load_settings, mask_url

    settings = load_settings()
    target = DatabaseSettings(to, settings.database.schema if schema is None else schema)
    try:
        moved = asyncio.run(move_database(settings.database.url, target))
    except Mismatch as error:
        print(_table(error.copies))
        return _fail("move-database", str(error))
    except MoveError as error:
        return _fail("move-database", str(error))
    except OSError as error:
        return _fail("move-database", f"cannot reach {mask_url(to)}: {error}")
    where = f" (schema {target.schema})" if target.schema else ""
    print(
        f"moved {mask_url(settings.database.url)} to {mask_url(to)}{where} "
        f"in {moved.seconds:.1f} s\n"
    )
    print(_table(moved.copies))
    print("\nevery copied table has the same rows and checksum on both sides.")
    print("\nTo run on PostgreSQL, change the [database] section of settings.ini to:\n")
    print(f"[database]\nurl = {mask_url(to)}")
    if target.schema:
        print(f"schema = {target.schema}")
    if mask_url(to) != to:
        print("\n(*** stands for the password of the URL given with --to)")
    print(
        "\nor set ONCALL_DATABASE_URL"
        + (" and ONCALL_DATABASE_SCHEMA" if target.schema else "")
        + ", then start the service. The SQLite file is left as it was."
    )
    return 0


def _table(copies: list[TableCopy]) -> str:
    """Return the per-table figures as aligned text."""
    width = max(len(c.table) for c in copies)
    lines = [f"{'table':<{width}}  {'rows':>8}  {'sha256':<16}  {'next id':>7}  check"]
    for c in copies:
        if c.skipped:
            lines.append(
                f"{c.table:<{width}}  {'-':>8}  {'-':<16}  {'':>7}  not copied: {c.skipped}"
            )
            continue
        check = (
            "same"
            if c.matches
            else f"DIFFERS: target {c.target_rows} rows, {c.target_checksum[:16]}"
        )
        next_id = "" if c.next_id is None else str(c.next_id)
        lines.append(
            f"{c.table:<{width}}  {c.rows:>8}  {c.checksum[:16]:<16}  {next_id:>7}  {check}"
        )
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def backup(path: str, force: bool) -> int:
    """Copy the configured SQLite database to `path`; print its figures; return the exit code."""
    import sqlite3

    from oncall.cluster.sole import sqlite_path
    from oncall.db.backup import BackupError, backup
    from oncall.db.engine import is_sqlite
    from oncall.settings import load_settings

    settings = load_settings()
    url = settings.database.url
    if not is_sqlite(url):
        return _fail(
            "backup",
            "the database is PostgreSQL: back it up with pg_dump "
            "(e.g. pg_dump --format=custom --file=oncall.dump DBNAME)",
        )
    source = sqlite_path(url)
    if source is None:
        return _fail("backup", "the database is in memory: there is no file to copy")
    try:
        done = backup(source, path, force)
    except BackupError as error:
        return _fail("backup", str(error))
    except (sqlite3.Error, OSError) as error:
        return _fail("backup", f"copying {source} to {path} failed: {error}")
    print(
        f"backed up {source} to {done.path}: {done.size / 2**20:.1f} MiB "
        f"({done.size} bytes) in {done.seconds:.1f} s, {_count(done.steps, 'step')}, "
        f"{_count(done.restarts, 'restart')}; integrity_check: {done.integrity}"
    )
    return 0


def main(words: list[str]) -> int:
    """Run `move-database` or `backup` with the options in `words`; return the exit code."""
    args = _parser().parse_args(words)
    try:
        if args.command == "move-database":
            return move_database(args.to, args.schema)
        return backup(args.file, args.force)
    except ConfigError as error:
        print("oncall cannot start, the configuration is invalid:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
