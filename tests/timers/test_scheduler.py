"""Timers written in batches are the jobs APScheduler itself would have written."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from oncall.clock import system_clock
from oncall.settings import RedisSettings
from oncall.timers.followups import ESCALATION, HEARTBEAT_JOB, STEP_JOB, JobSpec
from oncall.timers.scheduler import JOBS_LAYOUT, Timers
from tests.support.process import free_port
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

T0 = datetime(2026, 11, 28, 9, 0, 0, 250000, tzinfo=UTC)


def redis_settings(key_prefix: str) -> RedisSettings:
    return RedisSettings(REDIS_HOST, REDIS_PORT, "", 0, key_prefix, timedelta(seconds=1))


@pytest.fixture
def timers(key_prefix: str) -> Iterator[Timers]:
    timers = Timers(redis_settings(key_prefix), system_clock, "deployment-a")
    try:
        yield timers
    finally:
        timers.shutdown()
        timers.close()


def step(n: int, due: datetime = T0) -> JobSpec:
    """Return the level-2 job of incident `n`, due at `due`."""
    return JobSpec(ESCALATION, f"incident:{n}:level:2:repeat:0", STEP_JOB, (n, 2, 0), due)


def written(timers: Timers) -> set[str]:
    """Return the ids of the escalation jobs in Redis."""
    store = timers.stores["escalation"]
    return {key.decode() for key in store.redis.hkeys(store.jobs_key)}


def test_batched_jobs_carry_the_state_a_job_of_their_own_would(timers: Timers) -> None:
    specs = [step(n, T0 + timedelta(seconds=n)) for n in (1, 2)]
    specs.append(JobSpec(ESCALATION, "heartbeat:backup", HEARTBEAT_JOB, ("backup",), T0))
    assert timers.write_many(specs) == 3
    store = timers.stores["escalation"]
    for spec in specs:
        state = pickle.loads(store.redis.hget(store.jobs_key, spec.job_id))
        expected = Job(
            timers.scheduler,
            id=spec.job_id,
            func=spec.func,
            args=(*spec.args, "deployment-a"),
            kwargs={},
            trigger=DateTrigger(spec.run_date, timezone=UTC),
            executor="default",
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
            next_run_time=spec.run_date,
        ).__getstate__()
        assert state.pop("trigger").run_date == expected.pop("trigger").run_date
        assert state == expected
        assert store.redis.zscore(store.run_times_key, spec.job_id) == spec.run_date.timestamp()


async def test_changes_queued_together_are_written_in_order(timers: Timers) -> None:
    store = timers.stores["escalation"]
    timers.schedule([step(1), step(2)])
    timers.remove([(ESCALATION, step(1).job_id)])  # after its write: gone
    timers.remove([(ESCALATION, step(3).job_id)])  # before its write: kept
    timers.schedule([step(3)])
    assert store.redis.hlen(store.jobs_key) == 0  # queued for the writer, not written
    timers.start_threads()

    async def both_written() -> bool:
        return written(timers) == {step(2).job_id, step(3).job_id}

    await eventually(both_written, what="the queued changes")
    assert store.redis.zcard(store.run_times_key) == 2


async def test_far_jobs_are_written_alone_and_with_a_due_one(timers: Timers) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)
    timers.start_threads()
    timers.schedule([step(1, later)])
    timers.schedule([step(2, now)])

    async def written_are(*numbers: int) -> bool:
        return written(timers) == {step(n).job_id for n in numbers}

    await eventually(lambda: written_are(1, 2), what="both jobs")
    timers.schedule([step(3, later)])
    timers.remove([(ESCALATION, step(1).job_id)])
    await eventually(lambda: written_are(2, 3), what="the far job and the removal")


async def test_changes_are_dropped_while_redis_is_unhealthy(timers: Timers) -> None:
    """No queue grows while Redis is down: the change is dropped and the reconciler asked
    to rebuild from the database."""
    timers.health.trip(ConnectionError("paused"))
    timers.schedule([step(1)])
    assert timers.dropped == 1 and timers.lost
    assert timers._queued == []
    timers.health.reset()
    timers.lost = False
    timers.start_threads()
    timers.schedule([step(2)])
    await eventually(lambda: _is(written(timers), {step(2).job_id}), what="the write")
    assert not timers.lost


async def _is(value: object, expected: object) -> bool:
    return value == expected


async def test_a_failed_write_trips_the_breaker_and_drops_the_batch() -> None:
    nowhere = replace(redis_settings("oncall-test-nowhere"), port=free_port())
    timers = Timers(nowhere, system_clock)
    try:
        timers.start_threads()
        timers.schedule([step(1)])

        async def tripped() -> bool:
            return not timers.health.healthy

        await eventually(tripped, what="the breaker")
        assert timers.lost
    finally:
        await asyncio.to_thread(timers.shutdown)
        timers.close()


def test_jobs_run_when_the_services_clock_reaches_their_due_time(key_prefix: str) -> None:
    """A job due an hour from the service's clock runs an hour from now on the wall clock
    (APScheduler's), and an overdue one at once, whatever date the service's clock says."""
    fixed = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    timers = Timers(redis_settings(key_prefix), lambda: fixed, "deployment-a")
    try:
        store = timers.stores[ESCALATION]
        before = system_clock()
        timers.write_many(
            [step(1, fixed + timedelta(hours=1)), step(2, fixed - timedelta(minutes=5))]
        )
        after = system_clock()
        later = store.redis.zscore(store.run_times_key, step(1).job_id)
        overdue = store.redis.zscore(store.run_times_key, step(2).job_id)
        assert (before + timedelta(hours=1)).timestamp() <= later
        assert later <= (after + timedelta(hours=1)).timestamp()
        assert (before - timedelta(minutes=5)).timestamp() <= overdue <= after.timestamp()
        state = pickle.loads(store.redis.hget(store.jobs_key, step(1).job_id))
        assert state["next_run_time"].timestamp() == later
    finally:
        timers.close()


def test_a_marker_of_another_jobs_layout_counts_as_lost(timers: Timers) -> None:
    store = timers.stores[ESCALATION]
    assert timers.lost_since_reconcile()  # never marked
    timers.mark_reconciled()
    assert not timers.lost_since_reconcile()
    assert store.redis.get(timers.marker_key) == JOBS_LAYOUT
    store.redis.set(timers.marker_key, b"1")  # what the flat layout's service left
    assert timers.lost_since_reconcile()


def test_the_probe_misses_the_marker_only_once_this_process_wrote_it(
    timers: Timers, caplog: pytest.LogCaptureFixture
) -> None:
    """Before the first reconcile (a process starting, a follower that never led) no marker
    is no loss: saying so made the reconciler run again at once, racing what a test or a
    person did meanwhile. Once written, a missing marker is a flush."""
    timers.probe()
    assert not timers.lost
    assert "Redis lost its timers" not in caplog.text
    timers.mark_reconciled()
    timers.probe()
    assert not timers.lost
    timers.stores[ESCALATION].redis.delete(timers.marker_key)  # a flush
    timers.probe()
    assert timers.lost
    assert "Redis lost its timers" in caplog.text


def test_a_job_removed_under_the_scheduler_does_not_stop_it(timers: Timers) -> None:
    """The writer thread may remove a job (its incident closed) between the scheduler's
    read of due jobs and its own removal of the run job: that must not end its thread."""
    timers.scheduler.remove_job("incident:1:level:2:repeat:0", ESCALATION)  # no error


async def test_a_failing_pass_does_not_end_the_scheduler_thread(
    timers: Timers, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = iter([RuntimeError("a job store call outside APScheduler's handling")])
    passes: list[float | None] = []
    original = BackgroundScheduler._process_jobs

    def flaky(self: Any) -> float | None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        passes.append(original(self))
        return passes[-1]

    monkeypatch.setattr(BackgroundScheduler, "_process_jobs", flaky)
    timers.scheduler.start()

    async def looked_again() -> bool:
        timers.wakeup()
        return bool(passes)

    await eventually(looked_again, what="a pass after the failing one")
    assert timers.scheduler._thread.is_alive()


def test_a_due_job_removed_between_the_stores_two_reads_is_skipped_quietly(
    timers: Timers, caplog: pytest.LogCaptureFixture
) -> None:
    # What get_due_jobs sees when the writer removes a job between its read of the due ids
    # and its read of their states: an id without a state. It is no job to restore (nor an
    # error to log), and its run time goes, or the scheduler would wake for it at once.
    store = timers.stores[ESCALATION]
    store.redis.zadd(store.run_times_key, {"incident:1:exhausted": T0.timestamp()})
    assert store.get_due_jobs(T0 + timedelta(seconds=1)) == []
    assert "Unable to restore job" not in caplog.text
    assert store.redis.zscore(store.run_times_key, "incident:1:exhausted") is None


def test_a_job_written_anew_after_the_stores_read_is_kept(timers: Timers) -> None:
    # The read found no state for the id, and by the time the store acts on it the writer
    # has written the job again: the new job stays whole.
    spec = step(1)
    timers.write_many([spec])
    store = timers.stores[ESCALATION]
    assert store._reconstitute_jobs([(spec.job_id.encode(), None)]) == []
    assert written(timers) == {spec.job_id}
    assert store.redis.zscore(store.run_times_key, spec.job_id) is not None


async def test_a_scheduler_runs_nothing_while_its_gate_says_another_leads(
    timers: Timers,
) -> None:
    """A leader paused past its lease (SIGSTOP) resumes with its scheduler's thread free
    to run before its event loop notices: the gate, asked on that thread before every
    pass, keeps it from running what the new leader runs."""
    asked: list[bool] = []
    leads = False

    def gate() -> bool:
        asked.append(leads)
        return leads

    timers.start_threads()
    timers.write_many([step(1, system_clock() - timedelta(seconds=1))])
    timers.start_scheduler(gate)

    async def asked_thrice() -> bool:
        timers.wakeup()
        return len(asked) >= 3

    await eventually(asked_thrice, what="the gate asked on three passes")
    assert written(timers) == {"incident:1:level:2:repeat:0"}  # due, and not run
    leads = True

    async def ran() -> bool:
        timers.wakeup()
        return not written(timers)

    await eventually(ran, what="the due job run once the gate opens")


def test_a_stopped_scheduler_is_replaced_by_a_new_one_at_the_next_lead(timers: Timers) -> None:
    timers.start_threads()
    timers.start_scheduler(lambda: True)
    first = timers.scheduler
    stopped = timers.stop_scheduler()
    assert stopped is first and not timers.running and not timers.leading
    Timers.shutdown_scheduler(stopped)
    timers.start_scheduler(lambda: True)  # a shut-down APScheduler cannot start again
    assert timers.scheduler is not first and timers.running and timers.leading
