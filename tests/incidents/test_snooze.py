"""Snooze and ack timeout through the API: the incident is acknowledged until its wake,
then triggered again and paged from level 1; the due time on the row is the truth, the
Redis job (`incident:{id}:wake`) only wakes the process, and a stale wake changes nothing.
Pages reach a real HTTP receiver; the fake clock for state, the real one where a timer must
fire."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis

from oncall.clock import system_clock
from oncall.web.keys import RUNTIME
from tests.incidents.test_actions import (
    ALICE,
    act,
    directory,
    fired,
    open_incident,
    pages_reach,
    settled,
    timeline,
    timer_ids,
)
from tests.support.db import snapshot
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually


def with_ack_timeout(receiver: Any, timeout: str, on: str = "route") -> str:
    text = directory(receiver)
    if on == "route":
        return text.replace(
            "  - {policy: main}\n", f"  - {{policy: main, ack_timeout: {timeout}}}\n"
        )
    return text.replace("  - name: main\n", f"  - name: main\n    ack_timeout: {timeout}\n")


async def timers_become(key_prefix: str, incident_id: int, expected: set[str]) -> None:
    """Return once the incident's timers in Redis are `expected`: an action's changes are
    written there after its commit, by the timers' writer thread."""

    async def there() -> bool:
        return timer_ids(key_prefix, incident_id) == expected

    await eventually(there, what=f"the timers {sorted(expected)}")


def types(events: list[dict[str, Any]]) -> list[str]:
    """Return the timeline's acknowledgements, snoozes and wakes, in order."""
    wanted = ("acknowledged", "snoozed", "snooze_ended", "ack_timeout", "resolved")
    return [e["type"] for e in events if e["type"] in {f"incident.{w}" for w in wanted}]


async def test_snooze_acknowledges_until_its_end_then_pages_level_1_again(
    make_client, receiver, key_prefix, clock
):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    await eventually(pages_reach(receiver, ["alice"]), what="alice's first page")
    answer = await act(client, incident_id, "snooze", {"duration": "1h"})
    until = (clock() + timedelta(hours=1)).replace(microsecond=0)
    assert answer["status"] == "acknowledged" and answer["acknowledged_by"] == "bob"
    assert answer["snoozed_until"] is not None
    assert answer["next_step"] is None
    await timers_become(key_prefix, incident_id, {f"incident:{incident_id}:wake"})
    [snoozed] = [e for e in await timeline(client, incident_id) if e["type"] == "incident.snoozed"]
    assert snoozed["actor"] == "bob" and snoozed["detail"]["until"] == until.isoformat()

    runtime = client.app[RUNTIME]
    clock.advance(timedelta(minutes=59))
    assert not await runtime.incidents.run_wake(incident_id)  # woken early: nothing
    clock.advance(timedelta(minutes=1))
    assert await runtime.incidents.run_wake(incident_id)
    await eventually(pages_reach(receiver, ["alice", "alice"]), what="alice paged again")
    events = await timeline(client, incident_id)
    assert types(events) == ["incident.snoozed", "incident.snooze_ended"]
    assert fired(events) == [("main", 1, ["alice"]), ("main", 1, ["alice"])]
    row = await runtime.incidents.get(incident_id)
    assert (row.status, row.snoozed_until, row.next_level) == ("triggered", None, 2)
    await timers_become(key_prefix, incident_id, {f"incident:{incident_id}:level:2:repeat:0"})
    assert not await runtime.incidents.run_wake(incident_id)  # a second wake: nothing


async def test_a_second_identical_snooze_changes_nothing_and_a_new_one_replaces_the_end(
    make_client, receiver, clock
):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    await act(client, incident_id, "snooze", {"duration": "1h"})
    before = await settled(client)
    await act(client, incident_id, "snooze", {"duration": "1h"})
    assert await snapshot(client) == before
    clock.advance(timedelta(minutes=10))
    answer = await act(client, incident_id, "snooze", {"duration": "5m"})
    assert answer["snoozed_until"] is not None
    runtime = client.app[RUNTIME]
    row = await runtime.incidents.get(incident_id)
    assert row.snoozed_until == (clock() + timedelta(minutes=5)).replace(microsecond=0)
    assert row.acknowledged_by == "bob"


async def test_a_wake_after_a_resolution_does_nothing(make_client, receiver, key_prefix, clock):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    await act(client, incident_id, "snooze", {"duration": "1h"})
    await act(client, incident_id, "resolve", headers=ALICE)
    await timers_become(key_prefix, incident_id, set())
    before = await settled(client)
    clock.advance(timedelta(hours=2))
    assert not await client.app[RUNTIME].incidents.run_wake(incident_id)
    assert await snapshot(client) == before


async def test_snoozing_a_resolved_incident_is_a_409(make_client, receiver):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    await act(client, incident_id, "resolve", headers=ALICE)
    before = await settled(client)
    answer = await act(client, incident_id, "snooze", {"duration": "1h"}, status=409)
    assert answer["field"] == "status"
    assert await snapshot(client) == before


async def test_snoozing_an_unknown_incident_is_a_404(make_client, receiver):
    client = await make_client(directory=directory(receiver))
    await act(client, 999, "snooze", {"duration": "1h"}, status=404)


@pytest.mark.parametrize(
    "body",
    [
        {"duration": "soon"},  # not a duration
        {"duration": "0s"},  # not positive
        {"duration": "8d"},  # over a week
        {"duration": 3600},  # a number, not a duration
        {},  # missing
    ],
    ids=["not a duration", "zero", "over a week", "number", "missing"],
)
async def test_a_bad_snooze_is_a_400_naming_duration_and_writes_nothing(
    make_client, receiver, body
):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    before = await settled(client)
    answer = await act(client, incident_id, "snooze", body, status=400)
    assert answer["field"] == "duration"
    assert await snapshot(client) == before


@pytest.mark.parametrize("on", ["route", "policy"])
async def test_an_ack_timeout_triggers_again_and_pages_level_1(
    make_client, receiver, key_prefix, clock, on
):
    client = await make_client(directory=with_ack_timeout(receiver, "30m", on))
    incident_id = await open_incident(client)
    await eventually(pages_reach(receiver, ["alice"]), what="alice's first page")
    answer = await act(client, incident_id, "acknowledge", headers=ALICE)
    assert answer["ack_timeout_at"] is not None
    await timers_become(key_prefix, incident_id, {f"incident:{incident_id}:wake"})
    runtime = client.app[RUNTIME]
    clock.advance(timedelta(minutes=30))
    assert await runtime.incidents.run_wake(incident_id)
    await eventually(pages_reach(receiver, ["alice", "alice"]), what="alice paged again")
    events = await timeline(client, incident_id)
    assert types(events) == ["incident.acknowledged", "incident.ack_timeout"]
    assert fired(events) == [("main", 1, ["alice"]), ("main", 1, ["alice"])]
    # Acknowledging again re-arms it from then.
    await act(client, incident_id, "acknowledge", headers=ALICE)
    row = await runtime.incidents.get(incident_id)
    assert row.ack_timeout_at == clock() + timedelta(minutes=30)


async def test_the_routes_ack_timeout_wins_and_a_snooze_replaces_it(make_client, receiver, clock):
    text = with_ack_timeout(receiver, "30m").replace(
        "  - name: main\n", "  - name: main\n    ack_timeout: 2h\n"
    )
    client = await make_client(directory=text)
    incident_id = await open_incident(client)
    await act(client, incident_id, "acknowledge", headers=ALICE)
    runtime = client.app[RUNTIME]
    assert (await runtime.incidents.get(incident_id)).ack_timeout_at == clock() + timedelta(
        minutes=30
    )
    await act(client, incident_id, "snooze", {"duration": "1h"})
    row = await runtime.incidents.get(incident_id)
    assert row.ack_timeout_at is None and row.snoozed_until is not None
    clock.advance(timedelta(minutes=30))
    assert not await runtime.incidents.run_wake(incident_id)  # the timeout is gone


async def test_without_an_ack_timeout_an_acknowledgement_lasts(make_client, receiver, key_prefix):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    answer = await act(client, incident_id, "acknowledge", headers=ALICE)
    assert answer["ack_timeout_at"] is None
    await timers_become(key_prefix, incident_id, set())


async def test_the_reconciler_rebuilds_a_lost_wake(make_client, receiver, key_prefix):
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client)
    await act(client, incident_id, "snooze", {"duration": "1h"})
    wake = {f"incident:{incident_id}:wake"}

    async def armed() -> bool:
        return timer_ids(key_prefix, incident_id) == wake

    await eventually(armed, what="the wake job in Redis")
    lost = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:  # Redis loses the job (its keys deleted), the row keeps its due time
        lost.hdel(f"{key_prefix}:escalation:jobs", *wake)
        lost.zrem(f"{key_prefix}:escalation:run_times", *wake)
    finally:
        lost.close()
    assert timer_ids(key_prefix, incident_id) == set()
    await client.app[RUNTIME].reconciler.run_once()
    assert timer_ids(key_prefix, incident_id) == wake


async def test_a_short_snooze_ends_on_the_real_clock_and_pages_level_1(make_client, receiver):
    client = await make_client(directory=directory(receiver), clock=system_clock)
    incident_id = await open_incident(client)
    await eventually(pages_reach(receiver, ["alice"]), what="alice's first page")
    await act(client, incident_id, "snooze", {"duration": "1s"})
    await eventually(pages_reach(receiver, ["alice", "alice"]), what="alice paged after the snooze")
    assert "incident.snooze_ended" in types(await timeline(client, incident_id))
