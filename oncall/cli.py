"""The commands: `python app.py [serve|init|check-config|migrate|new-token|set-password]`,
`python app.py import VENDOR ...` (`oncall.imports.cli`), `python app.py
move-database|backup ...` (`oncall.db.cli`), and `python app.py simulate FILE --at TIME
...` (`oncall.simulate.cli`).

Exit codes: 0 success; 1 `check-config` found problems (or, with `--strict`, warnings),
`init` left a variable unset, or `set-password` refused the user or the password; 2 the
settings or the directory file are invalid at start-up (every problem is printed, one per
line).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TypeVar

from oncall.errors import ConfigError, InvalidInput, NotFound

# Imported where used: `serve` installs its SIGHUP handler before anything slow, and these
# (the YAML parser among them) are part of what is slow.
if TYPE_CHECKING:
    from oncall.accounts.service import Accounts
    from oncall.directory.holder import DirectoryHolder
    from oncall.directory.model import Directory
    from oncall.settings import Settings


_T = TypeVar("_T")


class EarlyReloads:
    """SIGHUPs that arrive while the service starts, before it can reload anything.

    Until its handler is installed, SIGHUP's default action kills the process; this one only
    counts, and the web layer applies one reload for them once start-up has finished (and
    installs its own handler).
    """

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        """Make SIGHUP count instead of killing the process."""
        signal.signal(signal.SIGHUP, self._remember)

    def _remember(self, _signum: int, _frame: FrameType | None) -> None:
        # A signal handler: no logging here (the signal may interrupt a logging call).
        self.count += 1

    def take(self) -> int:
        """Return how many SIGHUPs arrived since the last call, and forget them."""
        count, self.count = self.count, 0
        return count


def _print_problems(title: str, problems: list[str]) -> None:
    print(title, file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)


def check_config(strict: bool = False) -> int:
    """Validate settings and the directory file and lint the directory; return 0, or 1 with
    every problem printed (or, when `strict`, with a warning printed). Warnings (see
    `oncall.directory.lint`) are printed after the problems, each with its path."""
    from oncall.clock import system_clock
    from oncall.directory.lint import lint
    from oncall.directory.parse import load_directory
    from oncall.settings import load_settings

    problems: list[str] = []
    settings: Settings | None = None
    path = "oncall.yaml"
    env_file = DEFAULT_ENV_FILE
    try:
        settings = load_settings()
        path, env_file = settings.directory.path, settings.directory.env_file
    except ConfigError as error:
        problems += error.problems
        path = error.directory_path or path
    directory = None
    try:
        directory = load_directory(path, env_file=env_file)
    except ConfigError as error:
        problems += error.problems
    if problems:
        _print_problems("configuration is invalid:", problems)
    # The file alone: the database's overrides may fill a gap (the /status page reads them).
    warnings = lint(directory, system_clock()) if directory is not None else []
    for warning in warnings:
        print(f"warning: {path}: {warning}")
    if problems or directory is None:
        return 1
    many = "" if len(warnings) == 1 else "s"
    print(
        f"settings ({settings.source if settings else '?'}) and directory ({path}) are valid: "
        f"{len(directory.integrations)} integrations, {len(directory.users)} users, "
        f"{len(directory.schedules)} schedules, {len(directory.policies)} policies, "
        f"{len(directory.routes)} routes; {len(warnings) or 'no'} warning{many}"
    )
    return 1 if strict and warnings else 0


def _cannot_start(problems: list[str]) -> NoReturn:
    """Print every configuration problem and exit with code 2."""
    _print_problems("oncall cannot start, the configuration is invalid:", problems)
    raise SystemExit(2)


def _load() -> tuple[Settings, DirectoryHolder]:
    """Return the settings and the directory; exits with code 2 when either is invalid."""
    from oncall.directory.holder import DirectoryHolder
    from oncall.directory.parse import load_directory
    from oncall.settings import load_settings

    try:
        settings = load_settings()
        env_file = settings.directory.env_file
        directory = load_directory(settings.directory.path, env_file=env_file)
    except ConfigError as error:
        _cannot_start(error.problems)
    return settings, DirectoryHolder(directory, env_file)


# The directory keys whose values `init` may make up: tokens and secrets, nothing else.
SECRET_FIELDS = ("token", "api_token", "secret")
DEFAULT_ENV_FILE = "data/oncall.env"
TOKEN_BYTES = 32  # random bytes per token: 43 characters of URL-safe base64


def new_token() -> str:
    """Return a fresh random token, long enough for any token or secret of the directory."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def init() -> int:
    """Give every unset `${VAR}` of a token or secret in the directory file a fresh token
    in the env file (created with mode 0600; an existing one only gains lines); return 0,
    1 when a variable init cannot make up stays unset, or 2 when the settings, the
    directory file or the env file cannot be read."""
    from oncall.directory.envfile import append_env_file, create_env_file, read_env_file
    from oncall.directory.parse import unset_references
    from oncall.settings import load_settings

    try:
        settings = load_settings()
        path, env_file = settings.directory.path, settings.directory.env_file
        if not env_file:
            raise ConfigError(["[directory] env_file: init needs a file to write tokens to"])
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read directory file: {exc.strerror}"]) from None
        unset = unset_references(text, {**read_env_file(env_file), **os.environ})
        wanted = [name for name, key in unset if key.rpartition(".")[2] in SECRET_FIELDS]
        fresh = {name: new_token() for name in dict.fromkeys(wanted)}
        if fresh and not create_env_file(env_file, fresh):
            # It exists (or appeared meanwhile): keep every line, add the missing ones.
            unset = unset_references(text, {**read_env_file(env_file), **os.environ})
            still = {name for name, _ in unset}
            fresh = {name: value for name, value in fresh.items() if name in still}
            if fresh:
                append_env_file(env_file, fresh)
    except ConfigError as error:
        _print_problems("oncall init failed:", error.problems)
        return 2
    if fresh:
        print(f"{env_file}: wrote a fresh token for {', '.join(fresh)} (mode 0600).")
    else:
        print(f"{env_file}: every token {path} needs is set already; nothing written.")
    print(
        f"`python app.py` takes {path}'s ${{VAR}}s from the environment, else from "
        f"{env_file}. To use them in a shell:\n  set -a; . {env_file}; set +a"
    )
    user_tokens = [n for n, key in unset_references(text, {}) if key.endswith(".api_token")]
    if user_tokens:
        print(
            f'  curl -H "Authorization: Bearer ${user_tokens[0]}" localhost:8080/api/v1/incidents'
        )
    others = sorted({name for name, key in unset if name not in fresh})
    if not others:
        _first_password(settings)
    if others:
        print(
            f"not set, and not a token init can make up: {', '.join(others)}; set them in "
            f"the environment or add NAME=value lines to {env_file}",
            file=sys.stderr,
        )
        return 1
    return 0


def _first_password(settings: Settings) -> None:
    """When nobody has a web UI password yet, give the directory's first admin (else its
    first user) a generated one and print it, so that a newcomer can log in at once."""
    from oncall.accounts import passwords
    from oncall.clock import system_clock
    from oncall.directory.parse import load_directory

    try:
        directory = load_directory(settings.directory.path, env_file=settings.directory.env_file)
    except ConfigError:
        return  # check-config and start-up say what is wrong
    users = sorted(directory.users.values(), key=lambda u: not u.is_admin)
    if not users:
        return

    async def work(accounts: Accounts) -> str | None:
        if await accounts.users_with_passwords():
            return None
        password = passwords.generate()
        await accounts.set_password(users[0].name, password, "init", system_clock())
        return password

    password = asyncio.run(_with_accounts(settings, directory, work))
    if password is not None:
        print(
            f"web UI: log in at {settings.server.public_url.rstrip('/')}/login as "
            f"{users[0].name} with the password {password}\n"
            f"  (set another with: python app.py set-password {users[0].name})"
        )


async def _with_accounts(
    settings: Settings, directory: Directory, work: Callable[[Accounts], Awaitable[_T]]
) -> _T:
    """Return what `work` does with the accounts of the migrated database."""
    from oncall.accounts.service import Accounts
    from oncall.audit.service import Audit
    from oncall.db.engine import Database, make_engine
    from oncall.db.migrate import upgrade
    from oncall.directory.holder import DirectoryHolder

    engine = make_engine(settings.database)
    await upgrade(engine, settings.database.schema)
    db = Database(engine)
    try:
        return await work(Accounts(db, DirectoryHolder(directory), Audit(db)))
    finally:
        await db.close()


def _read_password() -> str:
    """Return the password typed twice at a terminal, or the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            raise InvalidInput("the two passwords differ", "password")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def set_password(user: str, generate: bool) -> int:
    """Set `user`'s web UI password, read from standard input or generated and printed
    (`generate`); return 0, or 1 naming what was refused."""
    from oncall.accounts import passwords
    from oncall.clock import system_clock

    settings, holder = _load()
    try:
        password = passwords.generate() if generate else _read_password()

        async def work(accounts: Accounts) -> None:
            await accounts.set_password(user, password, "cli", system_clock())

        asyncio.run(_with_accounts(settings, holder.current, work))
    except (InvalidInput, NotFound) as error:
        print(f"set-password: {error.field}: {error.message}", file=sys.stderr)
        return 1
    if generate:
        print(password)
    else:
        print(f"password of {user} set; their earlier sessions have ended", file=sys.stderr)
    return 0


def migrate_only() -> int:
    """Apply the database migrations and exit."""
    from oncall.db.engine import make_engine
    from oncall.db.migrate import upgrade

    settings, _ = _load()

    async def run() -> None:
        engine = make_engine(settings.database)
        try:
            await upgrade(engine, settings.database.schema)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("database is at the newest revision")
    return 0


def serve() -> int:
    """Run the service until SIGTERM or SIGINT; return its exit code (0)."""
    # First of all: loading the settings, the directory and the web stack, then migrating
    # and reconciling, takes long enough for a SIGHUP (a deployment tool reloading, a
    # terminal closing) to arrive meanwhile.
    early = EarlyReloads()
    early.install()
    from oncall import logs
    from oncall.web.app import run

    settings, directory = _load()
    logs.configure(settings.server.log_format, settings.server.log_level)
    try:
        run(settings, directory, early.take)
    except ConfigError as error:  # found at start-up: the signing key's file
        _cannot_start(error.problems)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command named in `argv` (default: serve); return its exit code."""
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["import"]:  # its own options: `import pagerduty --api-token T ...`
        from oncall.imports.cli import main as import_main

        return import_main(words[1:])
    if words[:1] in (["move-database"], ["backup"]):  # their own options too
        from oncall.db.cli import main as db_main

        return db_main(words)
    if words[:1] == ["simulate"]:  # `simulate FILE --at TIME ...`
        from oncall.simulate.cli import main as simulate_main

        return simulate_main(words[1:])
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=[
            "serve",
            "init",
            "check-config",
            "migrate",
            "new-token",
            "set-password",
            "import",
            "move-database",
            "backup",
            "simulate",
        ],
    )
    parser.add_argument("user", nargs="?", help="set-password: the user whose password to set")
    parser.add_argument(
        "--generate", action="store_true", help="set-password: generate one and print it"
    )
    parser.add_argument(
        "--strict", action="store_true", help="check-config: exit 1 on warnings too"
    )
    args = parser.parse_args(argv)
    if args.command == "set-password":
        if not args.user:
            parser.error("set-password needs a USER")
        return set_password(args.user, args.generate)
    if args.command == "new-token":
        print(new_token())
        return 0
    if args.command == "init":
        return init()
    if args.command == "check-config":
        return check_config(args.strict)
    if args.command == "migrate":
        return migrate_only()
    return serve()
