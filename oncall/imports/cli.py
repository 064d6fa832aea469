"""`python app.py import pagerduty|opsgenie|grafana-oncall ...`: read a vendor's REST API and
write a directory file to standard output or `--output`.

Each vendor module provides `auth_headers(secret) -> dict[str, str]` and
`async import_directory(client: ApiClient, now: datetime) -> ImportedDirectory`.

Exit codes: 0 written; 1 written, but the directory parser finds problems in it (printed);
2 nothing written (bad arguments, the API could not be read, the output file exists).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from oncall.clock import system_clock
from oncall.imports.directory_writer import ImportedDirectory, check, render
from oncall.imports.http import ApiClient, FetchError, open_client


@dataclass(frozen=True)
class Vendor:
    command: str
    module: str  # under oncall.imports
    title: str
    secret_option: str  # --api-token or --api-key
    secret_env: str  # the environment variable read when the option is not given
    base_url: str  # the default; empty: --base-url is required


VENDORS = (
    Vendor(
        "pagerduty",
        "pagerduty",
        "PagerDuty",
        "--api-token",
        "PAGERDUTY_API_TOKEN",
        "https://api.pagerduty.com",
    ),
    Vendor(
        "opsgenie",
        "opsgenie",
        "Opsgenie",
        "--api-key",
        "OPSGENIE_API_KEY",
        "https://api.opsgenie.com",
    ),
    Vendor(
        "grafana-oncall",
        "grafana_oncall",
        "Grafana OnCall",
        "--api-token",
        "GRAFANA_ONCALL_API_TOKEN",
        "",
    ),
)
_Import = Callable[[ApiClient, datetime], Awaitable[ImportedDirectory]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py import",
        description="Read users, schedules, escalation policies and services from another "
        "on-call service and write an oncall directory file.",
    )
    commands = parser.add_subparsers(dest="vendor", required=True, metavar="VENDOR")
    for vendor in VENDORS:
        sub = commands.add_parser(vendor.command, help=f"import from {vendor.title}")
        sub.add_argument(
            vendor.secret_option,
            dest="secret",
            metavar="SECRET",
            help=f"{vendor.title}'s API credential (default: ${vendor.secret_env})",
        )
        sub.add_argument(
            "--base-url",
            default=vendor.base_url or None,
            required=not vendor.base_url,
            help=f"the API's base URL{f' (default {vendor.base_url})' if vendor.base_url else ''}",
        )
        sub.add_argument("--output", "-o", help="write here (a new file) instead of stdout")
    return parser


def main(argv: list[str]) -> int:
    """Run `import VENDOR ...` with `argv` (the words after `import`); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    vendor = next(v for v in VENDORS if v.command == args.vendor)
    secret = args.secret or os.environ.get(vendor.secret_env, "")
    if not secret:
        option = f"{vendor.secret_option} (or ${vendor.secret_env})"
        parser.error(f"{vendor.command}: {option} is required")
    if args.output and os.path.exists(args.output):
        print(f"import: {args.output} exists; not overwriting it", file=sys.stderr)
        return 2
    module = importlib.import_module(f"oncall.imports.{vendor.module}")
    headers = cast(Callable[[str], dict[str, str]], module.auth_headers)(secret)
    work = cast(_Import, module.import_directory)

    async def run() -> ImportedDirectory:
        async with open_client(args.base_url, headers) as client:
            return await work(client, system_clock())

    try:
        imported = asyncio.run(run())
    except FetchError as error:
        print(f"import {vendor.command}: {error}", file=sys.stderr)
        return 2
    text = render(imported)
    if args.output:
        try:
            with open(args.output, "x", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            print(f"import: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    problems = check(text)
    if problems:
        print("import: the written directory has problems to fix by hand:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    where = args.output or "standard output"
    print(
        f"import {vendor.command}: wrote {len(imported.users)} users, "
        f"{len(imported.schedules)} schedules, {len(imported.policies)} policies, "
        f"{len(imported.integrations)} integrations and {len(imported.routes)} routes to "
        f"{where}; run `python app.py init` to generate its tokens",
        file=sys.stderr,
    )
    return 0
