"""Escalation against the real Redis and the real scheduler, on the real clock."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import timedelta
from typing import Any

import redis
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from oncall.clock import system_clock
from oncall.db.models import incidents, notifications
from oncall.escalation import store
from oncall.escalation.steps import Step
from oncall.timers.followups import ESCALATION, STEP_JOB, JobSpec
from oncall.web.keys import RUNTIME
from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, AM_AUTH, fast_directory, make_alert, make_webhook
from tests.support.ops import OPS
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import counted, eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}


async def open_incident(client: TestClient[Any, Any], name: str = "DiskFull") -> int:
    body = make_webhook([make_alert("db1", alertname=name)], alertname=name)
    response = await client.post(URL, json=body, headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return incident_id


async def escalation_events(
    client: TestClient[Any, Any], incident_id: int
) -> list[tuple[Any, ...]]:
    """Return the incident's escalation.* timeline entries as (type, level, repeat, targets)."""
    _, _, events = await client.app[RUNTIME].incidents.details(incident_id)
    return [
        (e.type, e.detail.get("level"), e.detail.get("repeat"), e.detail.get("targets"))
        for e in events
        if e.type.startswith("escalation.")
    ]


def job_ids(key_prefix: str, port: int = REDIS_PORT) -> set[str]:
    client = redis.Redis(host=REDIS_HOST, port=port)
    try:
        return {k.decode() for k in client.hkeys(f"{key_prefix}:escalation:jobs")}
    finally:
        client.close()


def levels_fired(events: list[tuple[Any, ...]]) -> list[tuple[int, int]]:
    return [(level, repeat) for kind, level, repeat, _ in events if kind == "escalation.level"]


async def test_it_climbs_every_level_and_repeat_then_exhausts(make_client, key_prefix):
    client = await make_client(
        # Steps 4 s apart: each state below lasts that long, to be seen on a loaded machine.
        directory=fast_directory(levels=("4s", "4s"), repeat=1),
        clock=system_clock,
    )
    incident_id = await open_incident(client)
    order = [(1, 0), (2, 0), (1, 1), (2, 1)]
    for index, (level, _repeat) in enumerate(order):
        events = await eventually(
            lambda n=index: _with_levels(client, incident_id, n + 1), what=f"step {index + 1}"
        )
        assert levels_fired(events)[: index + 1] == order[: index + 1]
        assert events[index][3] == [f"user:{'alice' if level == 1 else 'bob'}"]
        following = (
            f"incident:{incident_id}:level:{order[index + 1][0]}:repeat:{order[index + 1][1]}"
            if index + 1 < len(order)
            else f"incident:{incident_id}:exhausted"
        )
        # The step's job is gone from Redis and exactly the next one is pending.

        async def next_pending(f: str = following, n: int = index) -> bool:
            if job_ids(key_prefix) == {f}:
                return True
            # Read too late to see it: the next step (or the exhaustion) has fired, so its
            # job was pending.
            events = await escalation_events(client, incident_id)
            kinds = ("escalation.level", "escalation.exhausted")
            return len([e for e in events if e[0] in kinds]) > n + 1

        await eventually(next_pending, what=f"pending job {following}")
    events = await eventually(lambda: _exhausted(client, incident_id), what="exhaustion")
    assert [e[0] for e in events] == ["escalation.level"] * 4 + ["escalation.exhausted"]
    assert job_ids(key_prefix) == set()
    details = await (await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)).json()
    assert details["status"] == "triggered"  # exhaustion does not resolve


async def _async(value: Any) -> Any:
    return value


async def _with_levels(client: Any, incident_id: int, count: int) -> Any:
    events = await escalation_events(client, incident_id)
    return events if len(levels_fired(events)) >= count else None


async def _exhausted(client: Any, incident_id: int) -> Any:
    events = await escalation_events(client, incident_id)
    return events if events and events[-1][0] == "escalation.exhausted" else None


async def test_an_acknowledged_incident_never_escalates_again(make_client, key_prefix):
    client = await make_client(directory=fast_directory(levels=("2s", "2s")), clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(lambda: _with_levels(client, incident_id, 1), what="level 1")
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=ALICE)
    assert response.status == 200
    assert job_ids(key_prefix) == set()  # acknowledging removed the pending job
    # Even when the removal had failed, the job that then fires must do nothing:
    client.app[RUNTIME].timers.schedule(
        [
            JobSpec(
                ESCALATION,
                f"incident:{incident_id}:level:2:repeat:0",
                STEP_JOB,
                (incident_id, 2, 0),
                system_clock(),
            )
        ]
    )
    await eventually(
        lambda: _async(counted(client, "oncall_escalation_steps", outcome="stale") >= 1),
        what="stale run",
    )
    assert levels_fired(await escalation_events(client, incident_id)) == [(1, 0)]
    assert job_ids(key_prefix) == set()


async def test_resolving_removes_the_pending_job(make_client, key_prefix):
    client = await make_client(directory=fast_directory(levels=("1h", "1h")), clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(
        lambda: _async(job_ids(key_prefix) == {f"incident:{incident_id}:level:2:repeat:0"}),
        what="level 2 pending",
    )
    await client.post(
        URL, json=make_webhook([make_alert("db1", status="resolved")]), headers=AM_AUTH
    )
    # Timer writes reach Redis through the writer thread, after the answer.
    await eventually(lambda: _async(job_ids(key_prefix) == set()), what="the job removed")


async def test_a_stale_or_duplicated_job_changes_nothing(make_client, key_prefix):
    client = await make_client(directory=fast_directory(levels=("1h", "1h")), clock=system_clock)
    service = client.app[RUNTIME].escalation
    incident_id = await open_incident(client)
    await eventually(lambda: _with_levels(client, incident_id, 1), what="level 1")
    before = await snapshot(client)
    # The step that already fired, and one that is not next, both do nothing.
    assert await service.run_step(incident_id, Step(1, 0)) is False
    assert await service.run_step(incident_id, Step(2, 1)) is False
    assert await snapshot(client) == before
    # The pending step delivered twice at once, once due, fires once.
    await make_due_now(client, incident_id)
    outcomes = await asyncio.gather(
        service.run_step(incident_id, Step(2, 0)), service.run_step(incident_id, Step(2, 0))
    )
    assert sorted(outcomes) == [False, True]
    assert levels_fired(await escalation_events(client, incident_id)) == [(1, 0), (2, 0)]


async def make_due_now(client: TestClient[Any, Any], incident_id: int) -> None:
    """Move the incident's pending step's due time to now, as if its hour had passed."""
    now = system_clock()

    def due_now(conn: Any) -> None:
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(next_due_at=now))

    await client.app[RUNTIME].db.run(due_now)


def run_time(key_prefix: str, job_id: str) -> float | None:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        score = client.zscore(f"{key_prefix}:escalation:run_times", job_id)
        return None if score is None else float(score)
    finally:
        client.close()


async def test_a_job_that_fires_before_its_step_is_due_does_nothing_and_is_armed_again(
    make_client, key_prefix
):
    """A job Redis hands out early (written by another deployment sharing the key prefix,
    or left by an older due time) is not obeyed: the database's due time decides."""
    client = await make_client(directory=fast_directory(levels=("1h", "1h")), clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(lambda: _with_levels(client, incident_id, 1), what="level 1")
    job = f"incident:{incident_id}:level:2:repeat:0"
    due = await eventually(lambda: _value(run_time(key_prefix, job)), what="level 2's job")
    # Another writer moves the job to now; it fires at once.
    client.app[RUNTIME].timers.write_many(
        [JobSpec(ESCALATION, job, STEP_JOB, (incident_id, 2, 0), system_clock())]
    )
    assert await client.app[RUNTIME].escalation.run_step(incident_id, Step(2, 0)) is False
    assert levels_fired(await escalation_events(client, incident_id)) == [(1, 0)]

    async def armed_again() -> bool:
        score = run_time(key_prefix, job)
        return score is not None and abs(score - due) < 1

    await eventually(armed_again, what="the job armed at its due time again")
    assert levels_fired(await escalation_events(client, incident_id)) == [(1, 0)]


async def _value(value: Any) -> Any:
    return value


async def test_a_failing_step_is_retried_then_marked_failed_then_reconciled(
    make_client, key_prefix, monkeypatch
):
    # Level 1 is paged with the incident's opening; level 2 is the first step a timer runs.
    client = await make_client(
        directory=fast_directory(levels=("1s", "1h")),
        clock=system_clock,
        scheduler_reconcile_interval="1s",
    )
    client.app[RUNTIME].escalation.retry_base = timedelta(milliseconds=50)
    real_fire = store.fire_step
    calls: list[float] = []
    healthy = asyncio.Event()

    def failing_fire(conn: Any, incident_id: int, step: Step, *args: Any) -> Any:
        if step == Step(2, 0):  # the timer's step; level 1 goes with the opening
            calls.append(time.monotonic())
            if not healthy.is_set():
                raise ConnectionError("database went away")
        return real_fire(conn, incident_id, step, *args)

    monkeypatch.setattr(store, "fire_step", failing_fire)
    incident_id = await open_incident(client)
    await eventually(
        lambda: _async(counted(client, "oncall_escalation_steps", outcome="failed") == 1),
        what="failure",
    )
    assert len(calls) == 4  # the first attempt and 3 retries
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    assert [round(g, 2) >= 0.05 * 2**i for i, g in enumerate(gaps)] == [True] * 3
    events = await eventually(lambda: _failed_recorded(client, incident_id), what="record")
    assert events[-1][:3] == ("escalation.failed", 2, 0)
    health = await client.get("/health", headers=OPS)
    assert health.status == 503
    body = await health.json()
    assert body["failing"] == ["scheduler"]
    assert body["checks"]["scheduler"]["failed_steps"] == 1

    healthy.set()  # the database is back: the reconciler's next pass retries the step
    await eventually(lambda: _with_levels(client, incident_id, 2), what="retried step")
    await eventually(
        lambda: _async(counted(client, "oncall_reconcile_repairs") >= 1), what="repair recorded"
    )
    assert (await client.get("/health")).status == 200


async def test_a_failing_step_stops_retrying_once_this_process_stops_leading(
    make_client, monkeypatch, caplog
):
    """Cut off from the database, a leader steps down: a step it was retrying is left to
    the next leader's reconciler rather than retried from a follower."""
    client = await make_client(directory=fast_directory(levels=("1s", "1h")), clock=system_clock)
    escalation = client.app[RUNTIME].escalation
    escalation.retry_base = timedelta(milliseconds=50)
    leading = [True]
    escalation.leads = lambda: leading[0]
    real_fire = store.fire_step
    calls: list[Step] = []

    def failing_fire(conn: Any, incident_id: int, step: Step, *args: Any) -> Any:
        if step == Step(2, 0):
            calls.append(step)
            leading[0] = False  # the lease was lost meanwhile
            raise ConnectionError("database went away")
        return real_fire(conn, incident_id, step, *args)

    monkeypatch.setattr(store, "fire_step", failing_fire)
    caplog.set_level(logging.INFO, "oncall.escalation.service")
    await open_incident(client)
    await eventually(
        lambda: _async("escalation step left to the leader" in caplog.text), what="left"
    )
    assert calls == [Step(2, 0)]  # one attempt, no retry
    assert counted(client, "oncall_escalation_steps", outcome="failed") == 0


async def _failed_recorded(client: Any, incident_id: int) -> Any:
    events = await escalation_events(client, incident_id)
    return events if events and events[-1][0] == "escalation.failed" else None


async def test_a_schedule_target_pages_whoever_is_on_call_when_the_level_fires(make_client):
    from oncall.schedules.rotation import on_call
    from oncall.web.keys import DIRECTORY

    text = (
        fast_directory(levels=("1h", "1h"))
        .replace(
            "policies:",
            """schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {members: [alice, bob, carol], rotation: 1h, handoff: "2026-01-01 00:00"}
policies:""",
        )
        .replace('notify: ["user:alice"]', 'notify: ["schedule:primary", "user:bob"]')
    )
    client = await make_client(directory=text, clock=system_clock)
    incident_id = await open_incident(client)
    events = await eventually(lambda: _with_levels(client, incident_id, 1), what="level 1")
    _, _, all_events = await client.app[RUNTIME].incidents.details(incident_id)
    fired = next(e for e in all_events if e.type == "escalation.level")
    schedule = client.app[DIRECTORY].current.schedules["primary"]
    expected = on_call(schedule, [], fired.at)
    assert events[0][3] == ["schedule:primary", "user:bob"]
    assert fired.detail["paged"] == list(dict.fromkeys([expected, "bob"]))


async def test_a_schedule_with_nobody_on_call_is_recorded_and_the_others_are_paged(make_client):
    text = (
        fast_directory(levels=("1h", "1h"))
        .replace(
            "policies:",
            """schedules:
  - name: later
    time_zone: UTC
    layers:
      - {members: [carol], rotation: 1d, handoff: "2099-01-01 00:00"}
policies:""",
        )
        .replace('notify: ["user:alice"]', 'notify: ["schedule:later", "user:bob"]')
    )
    client = await make_client(directory=text, clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(lambda: _with_levels(client, incident_id, 1), what="level 1")
    _, _, events = await client.app[RUNTIME].incidents.details(incident_id)
    nobody = [e.detail for e in events if e.type == "escalation.nobody_on_call"]
    assert nobody == [{"schedule": "later"}]
    fired = next(e for e in events if e.type == "escalation.level")
    assert fired.detail["paged"] == ["bob"]


async def test_level_one_failing_with_the_opening_is_rolled_back_and_left_to_its_timer(
    make_client, key_prefix, monkeypatch
):
    # No reconcile pass during the test: it would paper over a step left without its timer.
    client = await make_client(
        directory=fast_directory(levels=("1h",), repeat=0),
        clock=system_clock,
        scheduler_reconcile_interval="1h",
    )
    real_fire = store.fire_step
    failures: list[int] = []

    def fire_then_fail(conn: Any, incident_id: int, *args: Any) -> Any:
        fired = real_fire(conn, incident_id, *args)
        if not failures:  # the first time, after the step wrote its pages and timeline
            failures.append(incident_id)
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return fired

    monkeypatch.setattr(store, "fire_step", fire_then_fail)
    incident_id = await open_incident(client)  # the alert is taken all the same
    assert failures == [incident_id]
    events = await eventually(lambda: _with_levels(client, incident_id, 1), what="level 1")
    assert levels_fired(events) == [(1, 0)]  # once, from its timer: the failed try left nothing

    def pages(conn: Any) -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in conn.execute(
                select(
                    notifications.c.level, notifications.c.user_name, notifications.c.kind
                ).where(notifications.c.incident_id == incident_id)
            )
        ]

    rows = await client.app[RUNTIME].db.run(pages)
    assert rows and len(rows) == len(set(rows)) and {r[0] for r in rows} == {1}
    # The timer's run, not the failed one, moved the incident on: its next wait is in Redis.
    await eventually(
        lambda: _async(job_ids(key_prefix) == {f"incident:{incident_id}:exhausted"}),
        what="the wait after level 1 scheduled",
    )
