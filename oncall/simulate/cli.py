"""`python app.py simulate FILE --at TIME [--hours 2] [--source alertmanager|events_v2|grafana]
[--acknowledge-after D] [--integration NAME] [--no-database]`: who would be paged, when
and how, if the alert in FILE (its JSON body) fired at TIME, printed as tables.

The directory file and the database are the settings' (the database only read: its
overrides, maintenance windows and recent incidents; a SQLite file that does not exist
yet holds none). Exit codes: 0 shown; 1 the database could not be read; 2 bad input (the
arguments, FILE, the settings or the directory file), naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from oncall.errors import ConfigError, InvalidInput, Unavailable
from oncall.simulate.payload import SOURCES
from oncall.simulate.scenario import DEFAULT_HOURS


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(
        prog="app.py simulate", description=(__doc__ or "").splitlines()[0]
    )
    found.add_argument("file", metavar="FILE", help="the alert's JSON body, as sent")
    found.add_argument("--at", required=True, help="ISO 8601 time with its offset")
    found.add_argument("--hours", type=float, default=DEFAULT_HOURS, help="the span (up to 168)")
    found.add_argument("--source", choices=SOURCES, default="alertmanager")
    found.add_argument("--acknowledge-after", metavar="D", help="a duration, such as 10m")
    found.add_argument("--integration", help="the integration receiving it (default: first)")
    found.add_argument(
        "--no-database", action="store_true", help="take no overrides, API windows or incidents"
    )
    return found


def main(argv: list[str]) -> int:
    """Run `simulate` with `argv` (the words after it); return its exit code."""
    from oncall.directory.parse import load_directory
    from oncall.settings import load_settings
    from oncall.simulate.table import render

    args = parser().parse_args(argv)
    try:
        with open(args.file, encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"simulate: {args.file}: cannot read it as JSON: {error}", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        directory = load_directory(settings.directory.path, env_file=settings.directory.env_file)
    except ConfigError as error:
        print("simulate: the configuration is invalid:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {
        "source": args.source,
        "payload": payload,
        "at": args.at,
        "hours": args.hours,
        "acknowledge_after": args.acknowledge_after,
        "integration": args.integration,
    }
    body = {key: value for key, value in body.items() if value is not None}
    database = None if args.no_database else settings.database
    try:
        simulation = asyncio.run(_simulate(database, directory, settings, body))
    except InvalidInput as error:
        where = _option(error.field)
        print(f"simulate: {where}: {error.message}", file=sys.stderr)
        return 2
    except Unavailable as error:
        print(
            f"simulate: the database could not be read ({error.message}); "
            "--no-database simulates without it",
            file=sys.stderr,
        )
        return 1
    print("\n".join(render(simulation, directory)))
    return 0


def _option(field: str | None) -> str:
    """Return the argument a body's field came from."""
    if field is None or field == "$":
        return "input"
    if field == "payload" or field.startswith("payload"):
        return f"FILE ({field.removeprefix('payload').lstrip('.') or 'the body'})"
    return f"--{field.replace('_', '-')}"


async def _simulate(database: Any, directory: Any, settings: Any, body: dict[str, Any]) -> Any:
    """Return the simulation of `body`, the state read from `database` (None, or a SQLite
    file that does not exist: none)."""
    from oncall.directory.holder import DirectoryHolder
    from oncall.simulate.scenario import simulate
    from oncall.simulate.service import Simulator, scenario_of, state_without_database

    storm = settings.paging.storm_threshold
    if database is None or _missing_sqlite(database.url):
        return simulate(directory, scenario_of(body), state_without_database(directory, storm))
    from oncall.db.engine import Database, make_engine

    db = Database(make_engine(database))
    try:
        return await Simulator(db, DirectoryHolder(directory), storm).simulation(body)
    finally:
        await db.close()


def _missing_sqlite(url: str) -> bool:
    """Return whether `url` names a SQLite file that does not exist (opening it would
    create it)."""
    from oncall.db.engine import is_sqlite

    if not is_sqlite(url) or ":///" not in url:
        return False
    path = url.split(":///", 1)[1]
    return path != ":memory:" and not os.path.exists(path)
