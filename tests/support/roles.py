"""A directory with a schedule, two responders and an admin, for tests of who may do what."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from oncall.db.models import metadata
from oncall.web.keys import RUNTIME
from tests.support.factories import ALICE_TOKEN, BOB_TOKEN, fast_directory

ADMIN_TOKEN = "dana-token-0123456789abcdefghijklmnopqrstuv"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCHEDULE = """schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {members: [alice, bob, carol], rotation: 1h, handoff: "2026-01-01 00:00"}
policies:"""


def responders_directory() -> str:
    """Return a directory with schedule `primary` whose users alice and bob (with API
    tokens) are responders, the default role: a file the code before roles reads too."""
    return fast_directory(levels=("1h", "1h")).replace("policies:", SCHEDULE)


def roles_directory() -> str:
    """Return `responders_directory()` plus dana, an admin (token ADMIN_TOKEN)."""
    return responders_directory().replace(
        "  - {name: carol,",
        f'  - {{name: dana, role: admin, api_token: "{ADMIN_TOKEN}", '
        "contacts: [{type: email, to: d@example.com}]}\n  - {name: carol,",
    )


def override(user: str) -> dict[str, str]:
    """Return the body of an override putting `user` on call for two hours from T0."""
    return {"user": user, "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T14:00:00Z"}


def _rows(conn: Connection, names: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    for name in names:
        table = metadata.tables.get(name)
        # A table the schema does not have yet (the code before it) reads as empty.
        found[name] = [tuple(r) for r in conn.execute(select(table))] if table is not None else []
    return found


async def written(client: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of the tables overrides, feeds and the audit log write: equal
    results mean nothing was written."""
    names = ("schedule_overrides", "calendar_feeds", "audit_log")
    return await client.app[RUNTIME].db.run(_rows, names)


async def call(
    client: Any, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any]:
    """Return (status, decoded JSON body or None) of one request."""
    response = await client.request(method, path, headers=headers, **kwargs)
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body
