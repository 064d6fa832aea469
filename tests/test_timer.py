"""Timers written in batches are the jobs APScheduler itself would have written."""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.triggers.date import DateTrigger

from oncall.config import RedisSettings
from oncall.timer import ESCALATION_JOB, HEARTBEAT_JOB, JobSpec, Timers
from tests.conftest import REDIS_HOST, REDIS_PORT, eventually

T0 = datetime(2026, 11, 28, 9, 0, 0, 250000, tzinfo=UTC)


def test_batched_jobs_carry_the_state_a_job_of_their_own_would(key_prefix: str) -> None:
    timers = Timers(RedisSettings(REDIS_HOST, REDIS_PORT, "", 0, key_prefix,
                                  timedelta(seconds=1)))
    specs = [JobSpec(f"incident:{n}:level:2:repeat:0", ESCALATION_JOB, [n, 2, 0],
                     T0 + timedelta(seconds=n)) for n in (1, 2)]
    specs.append(JobSpec("heartbeat:backup", HEARTBEAT_JOB, ["backup"], T0))
    try:
        assert timers.write_many("escalation", specs) == 3
        store = timers.stores["escalation"]
        for spec in specs:
            state = pickle.loads(store.redis.hget(store.jobs_key, spec.job_id))
            expected = Job(timers.scheduler, id=spec.job_id, func=spec.func,
                           args=tuple(spec.args), kwargs={},
                           trigger=DateTrigger(spec.run_date, timezone=UTC),
                           executor="default", misfire_grace_time=None, coalesce=True,
                           max_instances=1, next_run_time=spec.run_date).__getstate__()
            assert state.pop("trigger").run_date == expected.pop("trigger").run_date
            assert state == expected
            assert store.redis.zscore(store.run_times_key, spec.job_id) == \
                spec.run_date.timestamp()
    finally:
        timers.close()


async def test_changes_queued_together_are_written_in_order_in_one_flush(key_prefix: str
                                                                         ) -> None:
    timers = Timers(RedisSettings(REDIS_HOST, REDIS_PORT, "", 0, key_prefix,
                                  timedelta(seconds=1)))
    store = timers.stores["escalation"]

    def spec(n: int) -> JobSpec:
        return JobSpec(f"incident:{n}:level:2:repeat:0", ESCALATION_JOB, [n, 2, 0], T0)

    try:
        timers.schedule_many("escalation", [spec(1), spec(2)])
        timers.remove_many("escalation", [spec(1).job_id])  # after its write: gone
        timers.remove_many("escalation", [spec(3).job_id])  # before its write: kept
        timers.schedule_many("escalation", [spec(3)])
        assert store.redis.hlen(store.jobs_key) == 0  # nothing written before the flush
        await asyncio.sleep(0)  # one loop iteration: the flush runs
        ids = {key.decode() for key in store.redis.hkeys(store.jobs_key)}
        assert ids == {spec(2).job_id, spec(3).job_id}
        assert store.redis.zcard(store.run_times_key) == 2
    finally:
        timers.close()


async def test_far_jobs_wait_for_company_and_a_due_job_takes_them_along(key_prefix: str
                                                                        ) -> None:
    timers = Timers(RedisSettings(REDIS_HOST, REDIS_PORT, "", 0, key_prefix,
                                  timedelta(seconds=1)))
    store = timers.stores["escalation"]
    now = datetime.now(UTC)

    def spec(n: int, due: datetime) -> JobSpec:
        return JobSpec(f"incident:{n}:level:2:repeat:0", ESCALATION_JOB, [n, 2, 0], due)

    async def written() -> set[str]:
        return {key.decode() for key in store.redis.hkeys(store.jobs_key)}

    try:
        timers.schedule_many("escalation", [spec(1, now + timedelta(minutes=10))])
        await asyncio.sleep(0)  # one loop iteration: not yet, it waits for company
        assert await written() == set()
        timers.schedule_many("escalation", [spec(2, now)])  # due now: written at once
        await asyncio.sleep(0)
        assert await written() == {spec(1, now).job_id, spec(2, now).job_id}

        timers.schedule_many("escalation", [spec(3, now + timedelta(minutes=10))])
        timers.remove_many("escalation", [spec(1, now).job_id])  # a removal goes at once
        await asyncio.sleep(0)
        assert await written() == {spec(2, now).job_id, spec(3, now).job_id}

        timers.schedule_many("escalation", [spec(4, now + timedelta(minutes=10))])
        await asyncio.sleep(0)
        assert spec(4, now).job_id not in await written()
        # Alone, it goes at the end of the coalescing window.
        await eventually(lambda: _equals(written(), {spec(n, now).job_id for n in (2, 3, 4)}),
                         what="the coalesced write")
    finally:
        timers.close()


async def _equals(value: Any, expected: set[str]) -> bool:
    return await value == expected
