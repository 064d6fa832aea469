"""Timers written in batches are the jobs APScheduler itself would have written."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.job import Job
from apscheduler.triggers.date import DateTrigger

from oncall.config import RedisSettings
from oncall.timer import ESCALATION_JOB, HEARTBEAT_JOB, JobSpec, Timers
from tests.conftest import REDIS_HOST, REDIS_PORT, eventually

T0 = datetime(2026, 11, 28, 9, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture
def timers(key_prefix: str) -> Iterator[Timers]:
    timers = Timers(RedisSettings(REDIS_HOST, REDIS_PORT, "", 0, key_prefix,
                                  timedelta(seconds=1)))
    try:
        yield timers
    finally:
        timers.close()


def step(n: int, due: datetime = T0) -> JobSpec:
    """Return the level-2 job of incident `n`, due at `due`."""
    return JobSpec(f"incident:{n}:level:2:repeat:0", ESCALATION_JOB, [n, 2, 0], due)


def written(timers: Timers) -> set[str]:
    """Return the ids of the escalation jobs in Redis."""
    store = timers.stores["escalation"]
    return {key.decode() for key in store.redis.hkeys(store.jobs_key)}


def test_batched_jobs_carry_the_state_a_job_of_their_own_would(timers: Timers) -> None:
    specs = [step(n, T0 + timedelta(seconds=n)) for n in (1, 2)]
    specs.append(JobSpec("heartbeat:backup", HEARTBEAT_JOB, ["backup"], T0))
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


async def test_changes_queued_together_are_written_in_order_in_one_flush(timers: Timers
                                                                         ) -> None:
    store = timers.stores["escalation"]
    timers.schedule_many("escalation", [step(1), step(2)])
    timers.remove_many("escalation", [step(1).job_id])  # after its write: gone
    timers.remove_many("escalation", [step(3).job_id])  # before its write: kept
    timers.schedule_many("escalation", [step(3)])
    assert store.redis.hlen(store.jobs_key) == 0  # nothing written before the flush
    await asyncio.sleep(0)  # one loop iteration: the flush runs
    assert written(timers) == {step(2).job_id, step(3).job_id}
    assert store.redis.zcard(store.run_times_key) == 2


async def test_far_jobs_wait_for_company_and_a_due_job_takes_them_along(timers: Timers
                                                                        ) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)
    timers.schedule_many("escalation", [step(1, later)])
    await asyncio.sleep(0)  # one loop iteration: not yet, it waits for company
    assert written(timers) == set()
    timers.schedule_many("escalation", [step(2, now)])  # due now: written at once
    await asyncio.sleep(0)
    assert written(timers) == {step(1).job_id, step(2).job_id}

    timers.schedule_many("escalation", [step(3, later)])
    timers.remove_many("escalation", [step(1).job_id])  # a removal goes at once
    await asyncio.sleep(0)
    assert written(timers) == {step(2).job_id, step(3).job_id}

    timers.schedule_many("escalation", [step(4, later)])
    await asyncio.sleep(0)
    assert step(4).job_id not in written(timers)

    async def all_written() -> bool:
        return written(timers) == {step(n).job_id for n in (2, 3, 4)}

    # Alone, it goes at the end of the coalescing window.
    await eventually(all_written, what="the coalesced write")
