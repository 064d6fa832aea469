"""A person against a timer: acknowledgements and resolutions that land while a step's
pages are claimed or on the wire."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from oncall.clock import system_clock
from oncall.db.engine import make_engine
from oncall.db.models import incidents, notifications
from oncall.notify import store as notify_store
from oncall.notify.outbox import Claimed
from oncall.web.keys import RUNTIME
from tests.support.db import BACKENDS
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.receivers import HttpReceiver
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def webhook_directory(url: str, first_level: str = "1s") -> str:
    """Alice at level 1, bob at level 2, both paged by webhook at `url`."""
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{{type: webhook, url: "{url}"}}]}}
  - {{name: bob, api_token: "{BOB_TOKEN}", contacts: [{{type: webhook, url: "{url}"}}]}}
policies:
  - name: race
    repeat: 0
    levels:
      - {{notify: ["user:alice"], escalate_after: {first_level}}}
      - {{notify: ["user:bob"], escalate_after: 1h}}
routes:
  - {{policy: race}}
"""


class GatedReceiver(HttpReceiver):
    """Holds every trigger page until `gate` opens; `arrived` is set by the first."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if json.loads(await request.read())["event"] == "incident.triggered":
            self.arrived.set()
            await self.gate.wait()
        return await super().handle(request)


def pages(receiver: HttpReceiver) -> list[tuple[str, str, int]]:
    """Return (event, user, level) of every page the receiver answered."""
    bodies = [json.loads(r.body) for r in receiver.requests]
    return [(b["event"], b["user"], b["level"]) for b in bodies]


async def open_incident(client: TestClient[Any, Any]) -> int:
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return incident_id


async def rows(client: TestClient[Any, Any], incident_id: int) -> list[tuple[Any, ...]]:
    """Return (kind, level, status, sent) of the incident's notification rows."""

    def read(conn: Any) -> list[tuple[Any, ...]]:
        query = (
            select(
                notifications.c.kind,
                notifications.c.level,
                notifications.c.status,
                notifications.c.sent_at.is_not(None),
            )
            .where(notifications.c.incident_id == incident_id)
            .order_by(notifications.c.id)
        )
        return [tuple(row) for row in conn.execute(query)]

    return await client.app[RUNTIME].db.run(read)


async def idle(client: TestClient[Any, Any]) -> bool:
    """Return whether the process has no background work running (pages, job runs)."""
    return not client.app[RUNTIME].background._running


async def test_an_ack_committed_after_the_step_claimed_its_pages_stops_them(
    make_client: Any, receiver: HttpReceiver, monkeypatch: Any
) -> None:
    """Level 2 fires and claims bob's page; the acknowledgement commits before the send:
    the send-time re-check stops it, and the timeline shows no page after the ack."""
    client = await make_client(directory=webhook_directory(receiver.url), clock=system_clock)
    notifier = client.app[RUNTIME].notifier
    original = notifier._send_wanted
    acked = asyncio.Event()

    async def ack_first(claims: list[Claimed]) -> None:
        if any(c.notification.level == 2 for c in claims):
            response = await client.post(
                f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE
            )
            assert response.status == 200
            acked.set()
        await original(claims)

    monkeypatch.setattr(notifier, "_send_wanted", ack_first)
    incident_id = await open_incident(client)
    await asyncio.wait_for(acked.wait(), 30)
    await eventually(lambda: idle(client), what="the background work to finish")
    assert pages(receiver) == [("incident.triggered", "alice", 1)]
    assert await rows(client, incident_id) == [
        ("trigger", 1, "sent", True),
        ("trigger", 2, "cancelled", False),
    ]
    _, _, events = await client.app[RUNTIME].incidents.details(incident_id)
    kinds = [e.type for e in events]
    assert kinds.index("escalation.level", kinds.index("escalation.level") + 1) < kinds.index(
        "incident.acknowledged"
    )
    sent = [e.detail["level"] for e in events if e.type == "notification.sent"]
    assert sent == [1]


async def on_the_wire(make_client: Any, aiohttp_server: Any) -> tuple[Any, GatedReceiver, int]:
    """Return a client, its gated receiver and an incident whose level-1 page to alice is
    on the wire, held by the receiver until its gate opens."""
    receiver = GatedReceiver()
    server = await aiohttp_server(receiver.app())
    url = str(server.make_url("/hook"))
    client = await make_client(directory=webhook_directory(url, "1h"), clock=system_clock)
    incident_id = await open_incident(client)
    await asyncio.wait_for(receiver.arrived.wait(), 30)
    return client, receiver, incident_id


async def test_a_page_cancelled_while_on_the_wire_stays_cancelled(
    make_client: Any, aiohttp_server: Any
) -> None:
    """The ack lands while alice's page is on the wire: the attempt is recorded, the row
    stays cancelled (it is not turned back into `sent`), and nothing more is sent."""
    client, receiver, incident_id = await on_the_wire(make_client, aiohttp_server)
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE)
    assert response.status == 200
    receiver.gate.set()
    await eventually(lambda: idle(client), what="the page's attempt to be recorded")
    assert await rows(client, incident_id) == [("trigger", 1, "cancelled", True)]
    assert pages(receiver) == [("incident.triggered", "alice", 1)]


async def test_a_resolve_while_a_page_is_on_the_wire_tells_that_contact(
    make_client: Any, aiohttp_server: Any
) -> None:
    """Resolved while alice's page is on the wire: she may have it, so she gets the
    resolved message too."""
    client, receiver, incident_id = await on_the_wire(make_client, aiohttp_server)
    response = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=ALICE)
    assert response.status == 200
    receiver.gate.set()
    await eventually(lambda: idle(client), what="both messages")
    assert sorted(pages(receiver)) == [
        ("incident.resolved", "alice", 0),
        ("incident.triggered", "alice", 1),
    ]


async def test_a_wanted_page_begins_in_the_iteration_its_recheck_returns(
    make_client: Any, receiver: HttpReceiver, monkeypatch: Any
) -> None:
    """Nothing else runs between the send-time re-check and the page's attempt (found by
    the soak: a task spawned after the re-check began a loop iteration later, after the
    loop had answered a resolve)."""
    client = await make_client(directory=webhook_directory(receiver.url, "1h"), clock=system_clock)
    runtime = client.app[RUNTIME]
    notifier = runtime.notifier
    real_run, real_page = runtime.db.run, notifier.page
    ran_between: list[bool] = []
    others: list[bool] = []

    async def run(work: Any, *args: Any) -> Any:
        result = await real_run(work, *args)
        if work.__name__ == "still_wanted":
            # Whatever the loop runs next, before this task goes on, marks `others`.
            asyncio.get_running_loop().call_soon(others.append, True)
        return result

    def page(claimed: Any, now: Any) -> Any:
        ran_between.append(bool(others))
        return real_page(claimed, now)

    monkeypatch.setattr(runtime.db, "run", run)
    monkeypatch.setattr(notifier, "page", page)
    await open_incident(client)
    await eventually(lambda: _async(bool(receiver.requests)), what="the page")
    assert ran_between == [False]


async def _async(value: Any) -> Any:
    return value


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite runs one transaction at a time
async def test_an_ack_waits_for_a_running_recheck(
    make_client: Any, receiver: HttpReceiver, backend: str
) -> None:
    """The re-check holds its incident FOR SHARE: an acknowledgement cannot take the
    incident's row (its first statement) until the re-check has committed, so a page the
    re-check let through has begun before the acknowledgement commits and is answered."""
    if backend not in BACKENDS:
        pytest.skip("PostgreSQL is not among this run's backends")
    client = await make_client(directory=webhook_directory(receiver.url, "1h"), clock=system_clock)
    incident_id = await open_incident(client)
    runtime = client.app[RUNTIME]

    def page_id(conn: Any) -> int:
        query = select(notifications.c.id).where(notifications.c.incident_id == incident_id)
        return int(conn.execute(query).scalar_one())

    notification = await runtime.db.run(page_id)
    engine = make_engine(runtime.settings.database)  # connections of its own
    try:
        async with engine.connect() as recheck, engine.connect() as ack:
            await recheck.begin()
            await recheck.run_sync(lambda c: notify_store.still_wanted(c, [notification]))
            await ack.begin()
            await ack.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await ack.execute(
                    update(incidents)
                    .where(incidents.c.id == incident_id)
                    .values(status="acknowledged")
                )
            await ack.rollback()
            await recheck.commit()
    finally:
        await engine.dispose()
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE)
    assert response.status == 200
