"""A bad night: people and timers acting on one incident at the same moment, and input no
time zone database or channel can carry. Each race calls the service methods concurrently
(asyncio.gather) on both backends; every outcome must be a decision (done, or a 409), never
a crash, a deadlock or a page after the incident was closed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError, Conflict
from oncall.web.keys import RUNTIME
from tests.incidents.test_actions import (
    ALICE,
    act,
    directory,
    open_incident,
    pages_reach,
    settled,
    timer_ids,
)
from tests.maintenance.test_maintenance import add_window, iso
from tests.maintenance.test_maintenance import directory as maintenance_directory
from tests.maintenance.test_maintenance import open_incident as maintenance_open
from tests.support.roles import ADMIN
from tests.support.waiting import eventually


async def race(*calls: Any) -> list[Any]:
    """Run `calls` at once; return their results, a Conflict standing for a 409."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Conflict):
            raise result
    return results


async def pending(client: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications?status=pending", headers=ALICE)
    return list((await response.json())["notifications"])


async def test_resolve_racing_a_snooze_end_leaves_it_resolved_and_quiet(
    make_client, receiver, clock
):
    client = await make_client(directory=directory(receiver))
    incidents = client.app[RUNTIME].incidents
    incident_id = await open_incident(client)
    await eventually(pages_reach(receiver, ["alice"]), what="alice's first page")
    await act(client, incident_id, "snooze", {"duration": "1h"})
    clock.advance(timedelta(hours=1))
    await race(incidents.run_wake(incident_id), incidents.resolve(incident_id, "alice", clock()))
    await settled(client)
    row = await incidents.get(incident_id)
    assert row.status == "resolved" and row.next_due_at is None
    assert await pending(client) == []


async def test_acknowledge_racing_an_ack_timeout(make_client, receiver, clock):
    text = directory(receiver).replace(
        "  - {policy: main}\n", "  - {policy: main, ack_timeout: 30m}\n"
    )
    client = await make_client(directory=text)
    incidents = client.app[RUNTIME].incidents
    incident_id = await open_incident(client)
    await act(client, incident_id, "acknowledge", headers=ALICE)
    clock.advance(timedelta(minutes=30))
    await race(
        incidents.run_wake(incident_id), incidents.acknowledge(incident_id, "alice", clock())
    )
    await settled(client)
    row = await incidents.get(incident_id)
    if row.status == "acknowledged":
        assert row.next_due_at is None


@pytest.mark.parametrize(
    "pair",
    [
        ("snooze", "snooze"),
        ("snooze", "unacknowledge"),
        ("reassign", "escalate"),
        ("responders", "responders"),
        ("acknowledge", "escalate"),
        ("acknowledge", "reassign"),
        ("resolve", "escalate"),
        ("snooze", "acknowledge"),
    ],
    ids="+".join,
)
async def test_two_actions_at_once_never_crash(make_client, receiver, clock, pair):
    client = await make_client(directory=directory(receiver))
    incidents = client.app[RUNTIME].incidents
    incident_id = await open_incident(client)
    now = clock()
    calls = {
        "snooze": lambda: incidents.snooze(incident_id, "bob", timedelta(hours=1), now),
        "unacknowledge": lambda: incidents.unacknowledge(incident_id, "bob", now),
        "reassign": lambda: incidents.reassign(incident_id, "bob", "db", now),
        "escalate": lambda: incidents.escalate(incident_id, "bob", None, now),
        "responders": lambda: incidents.add_responder(incident_id, "bob", "carol", now),
        "acknowledge": lambda: incidents.acknowledge(incident_id, "alice", now),
        "resolve": lambda: incidents.resolve(incident_id, "alice", now),
    }
    await race(*(calls[name]() for name in pair))
    await settled(client)
    row = await incidents.get(incident_id)
    if row.status != "triggered":
        assert row.next_due_at is None
        assert await pending(client) == []
    if pair == ("responders", "responders"):
        carol = [r for r in receiver.requests if r.path.endswith("/carol")]
        assert len(carol) == 1


@pytest.mark.parametrize("zone", ["Europe", "America/Argentina", "tzdata.zi"])
async def test_a_window_in_a_zone_that_is_not_a_zone_is_a_400(make_client, receiver, zone):
    client = await make_client(directory=maintenance_directory(receiver))
    body = {
        "name": "sunday",
        "every": {"days": ["sun"], "from": "02:00", "to": "04:00", "time_zone": zone},
    }
    response = await client.post("/api/v1/maintenance", json=body, headers=ADMIN)
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == "every.time_zone"


class _Receiver:
    url = "http://127.0.0.1:9/hook"


@pytest.mark.parametrize(
    "where",
    ["maintenance", "user", "schedule"],
)
def test_a_directory_zone_that_is_a_folder_is_a_config_error(where):
    text = maintenance_directory(_Receiver())
    if where == "maintenance":
        text += (
            "maintenance:\n  - name: sunday\n    every: "
            '{days: [sun], from: "02:00", to: "04:00", time_zone: Europe}\n'
        )
        path = "every.time_zone"
    elif where == "user":
        text = text.replace("  - name: alice\n", "  - name: alice\n    time_zone: Europe\n")
        path = "time_zone"
    else:
        text += (
            "schedules:\n  - name: week\n    time_zone: Europe\n    layers:\n"
            "      - {users: [alice], rotation: weekly, start: 2026-01-05T09:00:00Z}\n"
        )
        path = "time_zone"
    with pytest.raises(ConfigError) as raised:
        parse_directory(text, {})
    assert path in str(raised.value) and "Europe" in str(raised.value)


# A window opening over incidents people already acted on.


def window_from_now(clock: Any) -> dict[str, Any]:
    return {
        "name": "db upgrade",
        "start": iso(clock() - timedelta(minutes=1)),
        "end": iso(clock() + timedelta(hours=2)),
    }


async def test_a_window_opening_keeps_a_snoozed_incidents_wake(
    make_client, receiver, key_prefix, clock
):
    """The snooze's end still wakes it on time (held: triggered again without a page)."""
    client = await make_client(directory=maintenance_directory(receiver))
    incident_id = await maintenance_open(client, "DiskFull")
    response = await client.post(
        f"/api/v1/incidents/{incident_id}/snooze", json={"duration": "1h"}, headers=ALICE
    )
    assert response.status == 200
    await add_window(client, window_from_now(clock))
    assert timer_ids(key_prefix, incident_id) == {f"incident:{incident_id}:wake"}
    row = await client.app[RUNTIME].incidents.get(incident_id)
    assert row.maintenance is not None and row.snoozed_until is not None


async def test_a_window_opening_neither_extends_nor_arms_an_ack_timeout(
    make_client, receiver, clock
):
    text = maintenance_directory(receiver).replace(
        "  - {policy: main}\n", "  - {policy: main, ack_timeout: 30m}\n"
    )
    client = await make_client(directory=text)
    incidents = client.app[RUNTIME].incidents
    acked = await maintenance_open(client, "DiskFull")
    triggered = await maintenance_open(client, "CpuHot")
    response = await client.post(f"/api/v1/incidents/{acked}/acknowledge", headers=ALICE)
    assert response.status == 200
    timeout_at = (await incidents.get(acked)).ack_timeout_at
    clock.advance(timedelta(minutes=10))
    await add_window(client, window_from_now(clock))
    assert (await incidents.get(acked)).ack_timeout_at == timeout_at
    assert (await incidents.get(triggered)).ack_timeout_at is None
