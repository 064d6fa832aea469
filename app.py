"""oncall: `python app.py [serve|check-config|migrate]`.

Exit codes: 0 success; 1 `check-config` found problems; 2 the settings or the directory file
are invalid at start-up (every problem is printed, one per line).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from typing import NoReturn

from aiohttp import web

from oncall.config import ConfigError, Settings, load_settings
from oncall.directory import DirectoryHolder, load_directory

log = logging.getLogger("oncall")


def _print_problems(title: str, problems: list[str]) -> None:
    print(title, file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def check_config() -> int:
    """Validate settings and the directory file; return 0, or 1 with every problem printed."""
    problems: list[str] = []
    settings: Settings | None = None
    path = "oncall.yaml"
    try:
        settings = load_settings()
        path = settings.directory.path
        _chosen_cpu(settings)
    except ConfigError as error:
        problems += error.problems
        path = error.directory_path or path
    try:
        directory = load_directory(path)
    except ConfigError as error:
        problems += error.problems
    if problems:
        _print_problems("configuration is invalid:", problems)
        return 1
    from oncall.clock import system_clock
    from oncall.coverage import schedule_gaps, unreachable_targets

    for warning in schedule_gaps(directory, system_clock()) + unreachable_targets(directory):
        print(f"warning: {warning}")
    print(f"settings ({settings.source if settings else '?'}) and directory ({path}) are valid: "
          f"{len(directory.integrations)} integrations, {len(directory.users)} users, "
          f"{len(directory.schedules)} schedules, {len(directory.policies)} policies, "
          f"{len(directory.routes)} routes")
    return 0


def _cannot_start(problems: list[str]) -> NoReturn:
    """Print every configuration problem and exit with code 2."""
    _print_problems("oncall cannot start, the configuration is invalid:", problems)
    raise SystemExit(2)


def _load() -> tuple[Settings, DirectoryHolder]:
    try:
        settings = load_settings()
        directory = load_directory(settings.directory.path)
    except ConfigError as error:
        _cannot_start(error.problems)
    return settings, DirectoryHolder(directory)


def migrate_only() -> int:
    """Apply the database migrations and exit."""
    from oncall import migrate
    from oncall.db import make_engine

    settings, _ = _load()

    async def run() -> None:
        engine = make_engine(settings.database)
        try:
            await migrate.upgrade(engine, settings.database.schema)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("database is at the newest revision")
    return 0


def _chosen_cpu(settings: Settings) -> int | None:
    """Return the CPU `[server] pin_cpu` keeps the service on (None: any); raises ConfigError
    naming the key when it asks for one this process cannot use."""
    from oncall import affinity
    from oncall.db import is_sqlite

    sqlite = is_sqlite(settings.database.url)
    writer_process = sqlite and settings.database.writer == "process"
    try:
        return affinity.choose_cpu(settings.server.pin_cpu, affinity.allowed_cpus(),
                                   sqlite and not writer_process, writer_process)
    except ValueError as error:
        raise ConfigError([f"[server] pin_cpu = {settings.server.pin_cpu}: {error}"]) from None


def _pin(settings: Settings) -> int | None:
    """Keep the service on one CPU as `[server] pin_cpu` says; return it (None: any).
    An explicit CPU this process cannot use stops start-up (exit code 2)."""
    from oncall import affinity

    try:
        cpu = _chosen_cpu(settings)
    except ConfigError as error:
        _cannot_start(error.problems)
    if cpu is None:
        return None
    try:
        affinity.pin(cpu)
    except OSError as error:
        if settings.server.pin_cpu != affinity.AUTO:
            _cannot_start([f"[server] pin_cpu = {cpu}: cannot pin: {error}"])
        # auto is an optimisation: a sandbox that refuses it must not stop the pager.
        log.warning("could not keep the service on one CPU; running unpinned",
                    extra={"cpu": cpu, "error": str(error)})
        return None
    return cpu


def serve() -> int:
    """Run the service until SIGTERM or SIGINT."""
    from oncall import logs
    from oncall.web.app import create_app
    from oncall.web.health import reload_directory

    settings, directory = _load()
    logs.configure(settings.server.log_format, settings.server.log_level)
    cpu = _pin(settings)  # before create_app starts any thread: threads inherit it
    app = create_app(settings, directory)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload_directory, app)
        log.info("oncall started", extra={"host": settings.server.host,
                                          "port": settings.server.port,
                                          "settings": settings.source,
                                          "directory": settings.directory.path,
                                          "cpu": "any" if cpu is None else cpu})
        # Everything built at start-up (modules, tables, the directory) lives as long as
        # the process: moved out of the collector's generations, it is no longer traversed
        # by every full collection. py-spy counted those collections at 15% of the event
        # loop's time while opening incidents; after the freeze, 1%.
        gc.collect()
        gc.freeze()

    app.on_startup.append(on_startup)
    # The event loop and the database thread share the GIL. At the default 5 ms switch
    # interval, every blocking call the loop makes (a Redis reply, a socket read) can wait
    # up to 5 ms to get the GIL back from a busy database thread.
    sys.setswitchinterval(0.0005)
    web.run_app(app, host=settings.server.host, port=settings.server.port,
                access_log_class=logs.AccessLogger, print=None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "check-config", "migrate"])
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config()
    if args.command == "migrate":
        return migrate_only()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
