"""The reconciler after an upgrade: jobs written under another layout are rewritten."""

from __future__ import annotations

import pickle
from typing import Any

import redis

from oncall.timers.followups import STEP_JOB
from oncall.timers.scheduler import JOBS_LAYOUT, store_keys
from tests.support.factories import AM_AUTH, fast_directory, make_alert, make_webhook
from tests.support.redis_server import REDIS_HOST, REDIS_PORT

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
