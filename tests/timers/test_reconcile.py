"""The reconciler: jobs of another layout, or at another time than their timer, are
rewritten; a job another deployment wrote is recognised."""

from __future__ import annotations

import asyncio
import pickle
from datetime import timedelta
from typing import Any

import redis

from oncall.clock import system_clock
from oncall.timers.followups import ESCALATION, STEP_JOB, JobSpec
from oncall.timers.scheduler import JOBS_LAYOUT, Timers, store_keys
from oncall.web.keys import RUNTIME
from tests.support.factories import AM_AUTH, fast_directory, make_alert, make_webhook
from tests.support.ops import OPS
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
OLD_JOB = "oncall.jobs:run_escalation_step"  # where the flat layout kept the step's job


async def test_jobs_of_the_old_layout_are_rewritten_at_start_up(
    make_client: Any, key_prefix: str
) -> None:
    directory = fast_directory(levels=("1h", "1h"))
    first = await make_client(directory=directory)
    response = await first.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    [incident_id] = (await response.json())["incidents"]
    await first.close()
    job_id = f"incident:{incident_id}:level:2:repeat:0"
    jobs_key, _ = store_keys(key_prefix, "escalation")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        # As a service of the flat layout left it: its job function, its marker.
        state = pickle.loads(client.hget(jobs_key, job_id))
        assert state["func"] == STEP_JOB
        client.hset(jobs_key, job_id, pickle.dumps({**state, "func": OLD_JOB}))
        client.set(f"{key_prefix}:reconciled", b"1")
        print("before", pickle.loads(client.hget(jobs_key, job_id))["func"])
        second = await make_client(directory=directory)
        assert pickle.loads(client.hget(jobs_key, job_id))["func"] == STEP_JOB
        assert client.get(f"{key_prefix}:reconciled") == JOBS_LAYOUT
        await second.close()
    finally:
        client.close()


async def _incident_with_level_two_pending(client: Any) -> tuple[int, str]:
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    [incident_id] = (await response.json())["incidents"]
    job_id = f"incident:{incident_id}:level:2:repeat:0"
    timers = client.app[RUNTIME].timers
    await eventually(lambda: _holds(timers, job_id), what="level 2's job")
    return incident_id, job_id


async def _holds(timers: Timers, job_id: str) -> bool:
    return job_id in await asyncio.to_thread(timers.run_times, ESCALATION)


async def test_a_job_at_another_time_than_its_step_is_written_again(
    make_client: Any, key_prefix: str
) -> None:
    """The reconciler checks a job's run time, not only that its id exists."""
    client = await make_client(directory=fast_directory(levels=("1h", "1h")), clock=system_clock)
    runtime = client.app[RUNTIME]
    incident_id, job_id = await _incident_with_level_two_pending(client)
    timers = runtime.timers
    due = (await asyncio.to_thread(timers.run_times, ESCALATION))[job_id]
    soon = runtime.clock() + timedelta(minutes=1)
    timers.write_many([JobSpec(ESCALATION, job_id, STEP_JOB, (incident_id, 2, 0), soon)])
    await runtime.reconciler.run_once()
    # Only the escalation's count: a page's retry written meanwhile (its delivery to the
    # example address failed) may be recreated too, when the pass read Redis first.
    assert runtime.reconciler.status.recreated["Escalation"] == 1
    assert abs((await asyncio.to_thread(timers.run_times, ESCALATION))[job_id] - due) < 1


async def test_a_job_of_another_deployment_does_nothing_and_health_says_so(
    make_client: Any, key_prefix: str
) -> None:
    """Two deployments sharing a key prefix: the other's job, due now, fires here and is
    recognised by the deployment it names; nothing is paged and /health fails."""
    client = await make_client(directory=fast_directory(levels=("1h", "1h")))
    runtime = client.app[RUNTIME]
    incident_id, job_id = await _incident_with_level_two_pending(client)
    other = Timers(runtime.settings.redis, runtime.clock, "other-deployment")
    try:
        other.write_many(
            [JobSpec(ESCALATION, job_id, STEP_JOB, (incident_id, 2, 0), runtime.clock())]
        )
    finally:
        other.close()

    async def reported() -> Any:
        response = await client.get("/health", headers=OPS)
        body = await response.json()
        return body if response.status == 503 else None

    body = await eventually(reported, what="/health naming the other deployment")
    assert body["failing"] == ["scheduler"]
    assert "other-deployment" in body["checks"]["scheduler"]["error"]
    assert body["checks"]["scheduler"]["foreign_jobs"] == {"other-deployment": 1}
    _, _, events = await runtime.incidents.details(incident_id)
    assert [e.detail["level"] for e in events if e.type == "escalation.level"] == [1]
