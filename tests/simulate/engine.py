"""The real engine run through a case under a fake clock: the app in process, its real
database and Redis, a real HTTP receiver for the pages.

The driver stands in for APScheduler, whose wake-ups follow the wall clock: it pauses the
scheduler and, at each instant, asks every timer source what the database says is due
(`due(now, limit)`, as the sweep of `oncall.timers.reconcile` does), starts those jobs with
`Runtime.start_job` and awaits the work they start; then it moves the clock to the next
instant any source expects a timer at (or the acknowledgement), until the case's period
ends. Nothing is mocked: the jobs, claims, pages and deliveries are the service's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from oncall.db.models import incident_events, incidents, notifications
from oncall.directory.holder import DirectoryHolder
from oncall.directory.model import Directory
from oncall.directory.parse import parse_directory
from oncall.durations import format_duration
from oncall.notify.storm import DIGEST_KIND
from oncall.runtime import Runtime
from oncall.settings import Settings
from oncall.timers.reconcile import TimerSource
from oncall.web.app import create_app
from oncall.web.keys import RUNTIME
from tests.conftest import FakeClock
from tests.simulate.cases import ADMIN_TOKEN, AM_TOKEN, HOOK, Case, Sent, prior_event
from tests.support.receivers import HttpReceiver

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DUE_LIMIT = 1000  # timers started per source and instant
# Instants one run may step through: far more than any case has; more means a timer that
# keeps coming due without doing anything.
MAX_INSTANTS = 2000
INGEST = {
    "alertmanager": ("/api/v1/integrations/alertmanager", {"Authorization": f"Bearer {AM_TOKEN}"}),
    "events_v2": ("/v2/enqueue", {}),
}


@dataclass(frozen=True)
class Step:
    """An escalation step as the incident's timeline records it."""

    at: datetime
    level: int
    repeat: int
    paged: tuple[str, ...]


@dataclass
class EngineRun:
    pages: list[Sent] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    # Every notification row: (id, status, kind, user, contact, level, repeat, sent_at).
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    instants: int = 0  # instants the clock stopped at
    # POST /api/v1/simulate's answer, asked just before the alert came: the service read
    # the overrides, windows and earlier openings from this run's database.
    answer: dict[str, Any] = field(default_factory=dict)


def hook_directory(case: Case, hook_url: str) -> Directory:
    """Return the case's directory with its contacts at `hook_url`; raises ConfigError."""
    return parse_directory(case.directory, {HOOK: hook_url}, "<case>")


def sources(runtime: Runtime) -> tuple[list[TimerSource], list[TimerSource]]:
    """Return the timer sources asked at one instant: those before the acknowledgement
    and those after it.

    Timers due at the same instant race in the service (APScheduler starts them in any
    order); the driver settles the race as the simulator does (`oncall.simulate.life`):
    a window's edge, the acknowledgement, its timeout (a wake), the escalation step, then
    the pages those wrote.
    """
    after: list[TimerSource] = [runtime.incidents, runtime.escalation, runtime.notifier]
    before: list[TimerSource] = [runtime.maintenance]
    rest = [s for s in runtime.reconciler.sources if s not in before and s not in after]
    return before, [*after, *rest]


async def settle(runtime: Runtime) -> None:
    """Return once no background work runs (job runs, pages being sent and recorded)."""
    running = runtime.background._running
    while running:
        await asyncio.wait(list(running))


async def start_due(runtime: Runtime, now: datetime, asked: Sequence[TimerSource]) -> int:
    """Start every job of `asked` the database says is due by `now`, a source at a time,
    each source's work finished before the next is asked; return how many were started."""
    started = 0
    for source in asked:
        due = await source.due(now, DUE_LIMIT)
        for job in due:
            runtime.start_job(job.func, job.args)
        started += len(due)
        await settle(runtime)
    return started


async def next_due(runtime: Runtime) -> datetime | None:
    """Return the earliest instant any source expects a timer at, or None."""
    found = []
    for source in runtime.reconciler.sources:
        expected = await source.expected()
        found += [job.run_date for job in source.jobs(expected.values())]
    return min(found, default=None)


async def run_engine(case: Case, settings: Settings, clock: FakeClock) -> EngineRun:
    """Run `case` through the service and return what it paged and the steps it fired.

    `settings` carry the case's storm threshold (`[paging] storm_threshold`) when it has
    one; the incidents opened before the case's are opened at their instants first.
    """
    receiver = HttpReceiver()
    async with TestServer(receiver.app()) as hook_server:
        directory = hook_directory(case, str(hook_server.make_url("/hook")))
        clock.now = min((*case.prior, case.at))
        app = create_app(settings, DirectoryHolder(directory), clock)
        async with TestClient(TestServer(app)) as client:
            runtime = client.app[RUNTIME]
            runtime.timers.pause()  # the driver decides when timers fire
            await settle(runtime)
            for window in case.api_windows:
                response = await client.post("/api/v1/maintenance", json=window, headers=ADMIN)
                assert response.status == 201, await response.text()
            for override in case.overrides:
                response = await client.post(
                    f"/api/v1/schedules/{override.schedule}/overrides",
                    json={
                        "user": override.user,
                        "start": override.start.isoformat(),
                        "end": override.end.isoformat(),
                    },
                    headers=ADMIN,
                )
                assert response.status == 201, await response.text()
            run = EngineRun()
            if case.prior:
                earlier = [
                    (at, lambda i=index: _post(client, "events_v2", prior_event(i)))
                    for index, at in enumerate(sorted(case.prior))
                ]
                run.instants += await _drive(client, clock, case.at, earlier)
            clock.now = case.at
            run.answer = await _simulate_through_api(client, case)
            await _post(client, case.source, case.payload)
            incident_id = await runtime.db.run(_newest_incident)
            actions = []
            if case.acknowledge_at is not None:
                actions.append((case.acknowledge_at, lambda: _acknowledge(client, incident_id)))
            run.instants += await _drive(client, clock, case.end, actions)
            run.pages, run.steps, run.rows = await runtime.db.run(_read_outcome, incident_id)
            delivered = sorted(int(r.headers["X-Oncall-Delivery"]) for r in receiver.requests)
            sent_ids = sorted(row[0] for row in run.rows if row[1] == "sent")
            assert delivered == sent_ids, "the receiver got other pages than the outbox sent"
            return run


Action = tuple[datetime, Callable[[], Awaitable[None]]]


async def _drive(
    client: TestClient[Any, Any], clock: FakeClock, end: datetime, actions: Sequence[Action]
) -> int:
    """Step the clock through every instant something is due, up to and including `end`,
    making each action at its instant (after windows' edges, before wakes, steps and
    pages, as the acknowledgement is made); return how many instants it stopped at."""
    runtime = client.app[RUNTIME]
    before, after = sources(runtime)
    pending = sorted((a for a in actions if a[0] <= end), key=lambda a: a[0])
    for instant in range(MAX_INSTANTS):
        while True:  # until nothing more is due now: one job's work may make another due
            await settle(runtime)
            started = await start_due(runtime, clock.now, before)
            while pending and pending[0][0] == clock.now:
                await pending.pop(0)[1]()
                await settle(runtime)
            started += await start_due(runtime, clock.now, after)
            if not started:
                break
        upcoming = [await next_due(runtime), *(at for at, _ in pending[:1])]
        later = [t for t in upcoming if t is not None and t > clock.now]
        following = min(later, default=None)
        if following is None or following > end:
            return instant + 1
        clock.now = following
    raise AssertionError(f"the engine was still busy after {MAX_INSTANTS} instants")


async def _post(client: TestClient[Any, Any], source: str, payload: Mapping[str, Any]) -> None:
    path, headers = INGEST[source]
    response = await client.post(path, json=dict(payload), headers=headers)
    assert response.status in (200, 202), await response.text()
    await settle(client.app[RUNTIME])


async def _simulate_through_api(client: TestClient[Any, Any], case: Case) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": case.source,
        "payload": dict(case.payload),
        "at": case.at.isoformat(),
        "hours": case.hours,
    }
    if case.acknowledge_after is not None:
        body["acknowledge_after"] = format_duration(case.acknowledge_after)
    response = await client.post("/api/v1/simulate", json=body, headers=ADMIN)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


def _newest_incident(conn: Connection) -> int:
    found: int = conn.execute(select(func.max(incidents.c.id))).scalar_one()
    return found


async def _acknowledge(client: TestClient[Any, Any], incident_id: int) -> None:
    """Acknowledge the case's incident through the API, as its admin."""
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ADMIN)
    assert response.status == 200, await response.text()


def _read_outcome(
    conn: Connection, incident_id: int
) -> tuple[list[Sent], list[Step], list[tuple[Any, ...]]]:
    """Return the pages sent (every incident's: those opened before page nobody), the
    steps `incident_id` fired and every notification row."""
    columns = notifications.c
    rows = [
        tuple(row)
        for row in conn.execute(
            select(
                columns.id,
                columns.status,
                columns.kind,
                columns.user_name,
                columns.contact_name,
                columns.level,
                columns.repeat,
                columns.sent_at,
                columns.contact_type,
            ).order_by(columns.id)
        )
    ]
    pages = sorted(
        Sent(sent_at, level, repeat, user, contact, channel, kind == DIGEST_KIND)
        for _, status, kind, user, contact, level, repeat, sent_at, channel in rows
        if status == "sent" and kind != "resolved"
    )
    events = conn.execute(
        select(incident_events.c.at, incident_events.c.detail)
        .where(
            incident_events.c.type == "escalation.level",
            incident_events.c.incident_id == incident_id,
        )
        .order_by(incident_events.c.id)
    )
    steps = [
        Step(at, detail["level"], detail["repeat"], tuple(detail["paged"])) for at, detail in events
    ]
    return pages, steps, rows
