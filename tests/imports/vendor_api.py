"""A vendor's REST API played back from fixture files, on a real local HTTP server; and
running the importer against it.

Each route answers one JSON file of tests/data/imports/<vendor>/ (by path, and by query
parameters where a listing has pages), after checking the vendor's authentication header:
anything else gets 401, as the vendor would answer a bad key. The vendor's own origin in
the files (in `next` links) is replaced with this server's, so pages link to it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pathlib
import secrets
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from oncall.directory.model import Directory
from oncall.directory.parse import parse_directory, unset_references
from tests.support.process import ROOT

DATA = pathlib.Path(__file__).parent.parent / "data" / "imports"


@dataclass(frozen=True)
class Route:
    path: str
    file: str
    query: Mapping[str, str] = field(default_factory=dict)  # must all be present


@dataclass
class Request:
    path: str
    query: dict[str, str]
    authorization: str


@dataclass
class VendorApi:
    """Answers `routes` from `vendor`'s fixtures to requests carrying `authorization`."""

    vendor: str
    origin: str  # the vendor's own, as the fixtures' links have it
    authorization: str
    routes: list[Route]
    prefix: str = ""  # the API's path under the server's root, e.g. /oncall
    requests: list[Request] = field(default_factory=list)
    url: str = ""  # the server's root, while it runs

    @property
    def base_url(self) -> str:
        """Return the URL an importer is given: the server's root and the prefix."""
        return self.url + self.prefix

    def load(self, file: str) -> Any:
        return json.loads((DATA / self.vendor / file).read_text())

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.requests.append(Request(request.path, query, request.headers.get("Authorization", "")))
        if request.headers.get("Authorization") != self.authorization:
            return web.json_response({"message": "Could not authenticate"}, status=401)
        path = request.path.removeprefix(self.prefix) if self.prefix else request.path
        if self.prefix and not request.path.startswith(self.prefix + "/"):
            path = ""
        candidates = [
            r
            for r in self.routes
            if r.path == path and all(query.get(k) == v for k, v in r.query.items())
        ]
        if not candidates:
            return web.json_response({"message": "not in the fixtures"}, status=404)
        chosen = max(candidates, key=lambda r: len(r.query))  # the most specific
        text = (DATA / self.vendor / chosen.file).read_text()
        return web.Response(
            text=text.replace(self.origin, self.base_url), content_type="application/json"
        )

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@asynccontextmanager
async def serve(api: VendorApi) -> AsyncIterator[VendorApi]:
    """Run `api` on a free local port; its `url` is set while it runs."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()


async def run_app(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run `python app.py ARGS` without blocking this event loop (the vendor's API is
    served from it); return its exit code, standard output and standard error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        *args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def tokens_for(text: str) -> dict[str, str]:
    """Return a fresh token for every ${VAR} of directory `text`, as `init` writes them."""
    return {name: secrets.token_urlsafe(32) for name, _ in unset_references(text, {})}


def parse_imported(text: str) -> Directory:
    """Return the directory `text` describes once every ${VAR} has a token."""
    return parse_directory(text, tokens_for(text), "<imported>")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def samples(spans: list[tuple[datetime, datetime, str]]) -> list[tuple[datetime, str | None]]:
    """Return instants to check and who the vendor says is on call then: every span's
    first minute, middle and last minute, and the middle of every gap between spans."""
    found: list[tuple[datetime, str | None]] = []
    ordered = sorted(spans)
    for start, end, who in ordered:
        found += [(start, who), (start + (end - start) / 2, who), (end - timedelta(minutes=1), who)]
    for (_, end, _), (start, _, _) in itertools.pairwise(ordered):
        if start > end:
            found.append((end + (start - end) / 2, None))
    return found
