"""Maintenance windows in the running service: a window that opens stops what is paging,
new alerts it covers page nobody, and its end pages level 1 of what is still triggered.
Pages reach a real HTTP receiver; timers are in real Redis. The edge timer must fire in
the first test, so it runs on the real clock with a window a few seconds long; the others
pin the fake clock and apply the windows by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from oncall.clock import system_clock
from oncall.maintenance.service import EDGE_JOB_ID
from oncall.timers.reconcile import RUN_TIME_SLACK
from oncall.web.keys import RUNTIME
from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, AM_TOKEN, T0, make_alert, make_webhook
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.roles import ADMIN, ADMIN_TOKEN, ALICE
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
GRAFANA_TOKEN = "grafana-token-0123456789abcdefghijklmnopqrstuv"


def directory(receiver: Any, maintenance: str = "") -> str:
    """alice (level 1) gets webhook `a` at once and webhook `b` 10 minutes later; bob is
    level 2 after 5 minutes; dana is an admin on no level."""
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
  - {{name: grafana, type: alertmanager, token: "{GRAFANA_TOKEN}"}}
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: webhook, name: a, url: "{receiver.url}/alice-a"}}
      - {{type: webhook, name: b, url: "{receiver.url}/alice-b"}}
    notification_rules: {{high: [{{contact: a, after: 0m}}, {{contact: b, after: 10m}}]}}
  - {{name: bob, contacts: [{{type: webhook, url: "{receiver.url}/bob"}}]}}
  - name: dana
    role: admin
    api_token: "{ADMIN_TOKEN}"
    contacts: [{{type: webhook, url: "{receiver.url}/dana"}}]
policies:
  - name: main
    repeat: 0
    levels:
      - {{notify: ["user:alice"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 5m}}
routes:
  - {{policy: main}}
{maintenance}"""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def open_incident(
    client: TestClient[Any, Any], name: str, token: str = AM_TOKEN, status: str = "firing"
) -> int:
    body = make_webhook([make_alert("db1", alertname=name, status=status)], alertname=name)
    response = await client.post(URL, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    return incident_id


async def incident(client: TestClient[Any, Any], incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    assert response.status == 200
    answer: dict[str, Any] = await response.json()
    return answer


def types(found: dict[str, Any]) -> list[str]:
    return [e["type"] for e in found["timeline"]]


def paged(receiver: Any) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in receiver.requests]


async def pending_pages(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications?status=pending", headers=ALICE)
    return list((await response.json())["notifications"])


def escalation_jobs(key_prefix: str) -> set[str]:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        return {k.decode() for k in client.hkeys(f"{key_prefix}:escalation:jobs")}
    finally:
        client.close()


async def add_window(client: TestClient[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/maintenance", json=body, headers=ADMIN)
    assert response.status == 201, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_a_window_stops_paging_holds_new_alerts_and_its_end_pages_level_1(
    make_client: Any, receiver: Any, key_prefix: str
) -> None:
    client = await make_client(directory=directory(receiver), clock=system_clock)
    first = await open_incident(client, "DiskFull")
    await eventually(lambda: _true(paged(receiver) == ["alice-a"]), what="level 1 paged")
    before = await incident(client, first)
    assert before["next_step"]["level"] == 2  # mid-escalation: bob is next
    assert [p["contact"] for p in await pending_pages(client)] == ["b"]  # alice's later page
    await eventually(
        lambda: _true(f"incident:{first}:" in " ".join(escalation_jobs(key_prefix))),
        what="level 2's job in Redis",
    )

    start = datetime.now(UTC) + timedelta(seconds=1)
    window = await add_window(
        client,
        {"name": "db upgrade", "start": iso(start), "end": iso(start + timedelta(seconds=5))},
    )
    assert window["name"] == "db upgrade" and window["source"] == "api"

    async def held() -> bool:
        return "maintenance.suppressed" in types(await incident(client, first))

    async def armed() -> bool:
        # The window's start is armed; on a slow machine it may have fired already (its
        # end is armed once the start is applied, a moment later).
        return EDGE_JOB_ID in escalation_jobs(key_prefix) or await held()

    assert await eventually(armed, what="the window's start armed")

    await eventually(held, what="the window's start")
    during = await incident(client, first)
    assert during["in_maintenance"] is True and during["next_step"] is None
    suppressed = [e for e in during["timeline"] if e["type"] == "maintenance.suppressed"]
    assert suppressed[0]["detail"]["window"] == "db upgrade"
    assert await pending_pages(client) == []  # alice's later page is cancelled
    # Its jobs leave Redis through the writer thread, a moment after the hold commits.
    await eventually(
        lambda: _true(
            not any(j.startswith(f"incident:{first}:") for j in escalation_jobs(key_prefix))
        ),
        what="the held incident's jobs removed",
    )

    # During the window: a new alert is recorded, held, and pages nobody; another resolves.
    second = await open_incident(client, "CpuHigh")
    third = await open_incident(client, "MemHigh")
    new = await incident(client, second)
    assert new["status"] == "triggered" and new["in_maintenance"] is True
    assert "escalation.level" not in types(new)
    assert "maintenance.suppressed" in types(new)
    await open_incident(client, "MemHigh", status="resolved")
    assert (await incident(client, third))["status"] == "resolved"
    assert paged(receiver) == ["alice-a"]

    async def released() -> bool:
        return "maintenance.released" in types(await incident(client, second))

    await eventually(released, what="the window's end")
    await eventually(
        lambda: _true(sorted(paged(receiver)) == ["alice-a", "alice-a", "alice-a"]),
        what="level 1 paged for both still-triggered incidents",
    )
    for incident_id in (first, second):
        after = await incident(client, incident_id)
        assert after["in_maintenance"] is False
        assert after["next_step"]["level"] == 2  # escalating again from level 1
        [release] = [e for e in after["timeline"] if e["type"] == "maintenance.released"]
        assert release["detail"]["paged"] is True
        levels = [
            e["detail"]["level"] for e in after["timeline"] if e["type"] == "escalation.level"
        ]
        assert levels[-1] == 1
    resolved = await incident(client, third)
    assert "escalation.level" not in types(resolved)
    assert resolved["in_maintenance"] is False
    assert EDGE_JOB_ID not in escalation_jobs(key_prefix)  # no edge left


async def _true(value: bool) -> bool:
    return value


async def test_applying_a_window_again_or_late_changes_nothing_more(
    make_client: Any, receiver: Any, clock: Any
) -> None:
    client = await make_client(directory=directory(receiver))
    runtime = client.app[RUNTIME]
    incident_id = await open_incident(client, "DiskFull")

    async def sent(times: int) -> bool:  # a page is recorded after it is sent
        return types(await incident(client, incident_id)).count("notification.sent") == times

    await eventually(lambda: sent(1), what="level 1's page sent")
    await add_window(
        client,
        {
            "name": "now",
            "start": iso(T0 - timedelta(minutes=1)),
            "end": iso(T0 + timedelta(hours=1)),
        },
    )
    assert (await incident(client, incident_id))["in_maintenance"] is True
    held = await snapshot(client)
    await runtime.maintenance.apply_edge()  # handled twice
    assert await snapshot(client) == held
    assert await runtime.maintenance.expected() == {EDGE_JOB_ID: T0 + timedelta(hours=1)}

    clock.advance(timedelta(hours=3))  # the end is handled late
    await runtime.maintenance.apply_edge()
    after = await incident(client, incident_id)
    assert after["in_maintenance"] is False
    assert types(after).count("maintenance.released") == 1
    await eventually(lambda: sent(2), what="level 1's page after the release sent")
    released = await snapshot(client)
    await runtime.maintenance.apply_edge()
    assert await snapshot(client) == released
    assert await runtime.maintenance.expected() == {}  # nothing left to wake for


async def test_a_window_covers_by_match_and_by_integration(make_client: Any, receiver: Any) -> None:
    maintenance = f"""maintenance:
  - name: disks
    start: "{iso(T0 - timedelta(hours=1))}"
    end: "{iso(T0 + timedelta(hours=1))}"
    match: ['alertname="DiskFull"']
  - name: grafana upgrade
    start: {iso(T0 - timedelta(hours=1))}
    end: {iso(T0 + timedelta(hours=1))}
    integrations: [grafana]
"""
    client = await make_client(directory=directory(receiver, maintenance))
    disk = await incident(client, await open_incident(client, "DiskFull"))
    cpu = await incident(client, await open_incident(client, "CpuHigh"))
    graf = await incident(client, await open_incident(client, "CpuHigh", GRAFANA_TOKEN))
    assert disk["maintenance"] == "directory:disks"
    assert cpu["in_maintenance"] is False and "escalation.level" in types(cpu)
    assert graf["maintenance"] == "directory:grafana upgrade"
    assert "escalation.level" not in types(graf)
    response = await client.get("/api/v1/maintenance", headers=ALICE)
    listed = (await response.json())["windows"]
    assert [(w["name"], w["source"], w["open"]) for w in listed] == [
        ("disks", "directory", True),
        ("grafana upgrade", "directory", True),
    ]


async def test_the_api_refuses_bad_windows_non_admins_and_unknown_ids_and_audits(
    make_client: Any, receiver: Any
) -> None:
    client = await make_client(directory=directory(receiver))
    weekly = {
        "name": "sunday",
        "every": {"days": ["sun"], "from": "02:00", "to": "04:00", "time_zone": "Europe/Berlin"},
        "match": ['team="db"'],
    }
    for body, field in [
        ({**weekly, "every": {**weekly["every"], "time_zone": "Nowhere/Else"}}, "every.time_zone"),
        ({**weekly, "match": ['team="db']}, "match[0]"),
        ({**weekly, "integrations": ["nope"]}, "integrations[0]"),
        ({"name": "x", "start": "2026-01-05T12:00:00", "end": "2026-01-05T13:00:00Z"}, "start"),
        ({"start": "2026-01-05T12:00:00Z", "end": "2026-01-05T13:00:00Z"}, "name"),
        (["not", "an", "object"], "$"),
    ]:
        response = await client.post("/api/v1/maintenance", json=body, headers=ADMIN)
        assert response.status == 400
        assert (await response.json())["field"] == field
    response = await client.post("/api/v1/maintenance", json=weekly, headers=ALICE)
    assert response.status == 403
    response = await client.get("/api/v1/maintenance", headers=ALICE)
    assert (await response.json())["windows"] == []  # nothing refused was written

    created = await add_window(client, weekly)
    assert created["every"]["time_zone"] == "Europe/Berlin" and created["match"] == ['team="db"']
    response = await client.delete(f"/api/v1/maintenance/{created['id']}", headers=ALICE)
    assert response.status == 403
    response = await client.delete("/api/v1/maintenance/999", headers=ADMIN)
    assert response.status == 404
    response = await client.delete("/api/v1/maintenance/x", headers=ADMIN)
    assert response.status == 400
    response = await client.delete(f"/api/v1/maintenance/{created['id']}", headers=ADMIN)
    assert response.status == 204
    response = await client.get("/api/v1/audit", headers=ADMIN)
    entries = (await response.json())["entries"]
    assert [(e["action"], e["actor"], e["subject"]) for e in entries] == [
        ("maintenance.delete", "dana", f"maintenance:{created['id']}"),
        ("maintenance.add", "dana", f"maintenance:{created['id']}"),
    ]
    assert entries[1]["detail"]["name"] == "sunday"


async def test_the_reconciler_rebuilds_the_edge_timer_from_the_database(
    make_client: Any, receiver: Any, key_prefix: str
) -> None:
    from tests.support.redis_server import delete_keys

    client = await make_client(directory=directory(receiver))
    runtime = client.app[RUNTIME]
    start = T0 + timedelta(hours=2)
    await add_window(
        client, {"name": "later", "start": iso(start), "end": iso(start + timedelta(hours=1))}
    )
    await eventually(lambda: _true(EDGE_JOB_ID in escalation_jobs(key_prefix)), what="armed")
    delete_keys(key_prefix)  # Redis lost every timer
    assert EDGE_JOB_ID not in escalation_jobs(key_prefix)
    await runtime.reconciler.run_once()
    assert EDGE_JOB_ID in escalation_jobs(key_prefix)
    run_times = runtime.timers.run_times("escalation")
    # at the window's start (the wall-clock reading of the fake clock's instant moves on)
    assert abs(run_times[EDGE_JOB_ID] - runtime.timers.wall_timestamp(start)) < RUN_TIME_SLACK
    # While Redis is down the sweep asks the database: nothing is due before the start.
    assert await runtime.maintenance.due(T0, 10) == []
    [job] = await runtime.maintenance.due(start, 10)
    assert job.job_id == EDGE_JOB_ID


async def test_a_snooze_ending_inside_a_window_pages_nobody_until_the_window_ends(
    make_client: Any, receiver: Any, clock: Any
) -> None:
    client = await make_client(directory=directory(receiver))
    runtime = client.app[RUNTIME]
    incident_id = await open_incident(client, "DiskFull")

    async def sent(times: int) -> bool:  # a page is recorded after it is sent
        return types(await incident(client, incident_id)).count("notification.sent") == times

    await eventually(lambda: sent(1), what="level 1's page sent")
    response = await client.post(
        f"/api/v1/incidents/{incident_id}/snooze", json={"duration": "30m"}, headers=ALICE
    )
    assert response.status == 200, await response.text()
    await add_window(
        client,
        {
            "name": "upgrade",
            "start": iso(T0 - timedelta(minutes=1)),
            "end": iso(T0 + timedelta(hours=1)),
        },
    )
    clock.advance(timedelta(minutes=31))
    before = await client.get(f"/api/v1/notifications?incident={incident_id}", headers=ALICE)
    pages = len((await before.json())["notifications"])
    assert await runtime.incidents.run_wake(incident_id)
    woken = await incident(client, incident_id)
    assert (woken["status"], woken["in_maintenance"], woken["next_step"]) == (
        "triggered",
        True,
        None,
    )
    [ended] = [e for e in woken["timeline"] if e["type"] == "incident.snooze_ended"]
    assert ended["detail"]["held_by"] == woken["maintenance"]
    after = await client.get(f"/api/v1/notifications?incident={incident_id}", headers=ALICE)
    assert len((await after.json())["notifications"]) == pages  # nobody paged
    clock.advance(timedelta(minutes=30))  # past the window's end
    await runtime.maintenance.apply_edge()
    await eventually(lambda: sent(2), what="level 1 paged at the window's end")


async def test_a_window_added_by_a_reload_holds_its_incidents_at_once(
    make_client: Any, receiver: Any, directory_file: Any
) -> None:
    client = await make_client(directory=directory(receiver))
    incident_id = await open_incident(client, "DiskFull")
    assert (await incident(client, incident_id))["in_maintenance"] is False
    window = f"""maintenance:
  - name: disks
    start: "{iso(T0 - timedelta(hours=1))}"
    end: "{iso(T0 + timedelta(hours=1))}"
"""
    directory_file.write_text(directory(receiver, window))
    response = await client.post("/-/reload", headers=ADMIN)
    assert response.status == 200, await response.text()
    held = await incident(client, incident_id)
    assert held["maintenance"] == "directory:disks"
    assert "maintenance.suppressed" in types(held)
