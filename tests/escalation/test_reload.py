"""A directory reload in the middle of an escalation: an incident follows its policy by
name, an incident whose policy vanished takes its route's current policy, and a shortened
policy keeps the repeat pass it still promises."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from oncall.escalation.steps import Step
from oncall.web.keys import DIRECTORY, RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, AM_TOKEN, make_alert, make_webhook

URL = "/api/v1/integrations/alertmanager"


def directory(policy: str, levels: int, repeat: int) -> str:
    """Alice, bob, carol at levels 1, 2, 3 (as many as `levels`) of `policy`, 10m each."""
    users = ["alice", "bob", "carol"][:levels]
    level_lines = "\n".join(
        f'      - {{notify: ["user:{user}"], escalate_after: 10m}}' for user in users
    )
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{{type: email, to: a@example.com}}]}}
  - {{name: bob, contacts: [{{type: email, to: b@example.com}}]}}
  - {{name: carol, contacts: [{{type: email, to: c@example.com}}]}}
policies:
  - name: {policy}
    repeat: {repeat}
    levels:
{level_lines}
routes:
  - {{policy: {policy}}}
"""


async def open_incident(client: TestClient[Any, Any]) -> int:
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return incident_id


def reload(client: TestClient[Any, Any], text: str) -> None:
    holder = client.app[DIRECTORY]
    Path(holder.current.source).write_text(text)
    holder.reload()


async def timeline(client: TestClient[Any, Any], incident_id: int) -> list[tuple[Any, ...]]:
    """Return the escalation entries as (type, level, repeat, policy)."""
    _, _, events = await client.app[RUNTIME].incidents.details(incident_id)
    return [
        (e.type, e.detail.get("level"), e.detail.get("repeat"), e.detail.get("policy"))
        for e in events
        if e.type.startswith("escalation.")
    ]


async def fire_next(client: TestClient[Any, Any], clock: Any, incident_id: int) -> None:
    """Let the pending step's 10 minutes pass and fire it as its job would.

    Its job may fire at the same moment (the reconciler moves a job whose run time no
    longer matches the fake clock's due time): the step's claim lets one of the two fire
    it, and the other returns only after that one committed."""
    clock.advance(timedelta(minutes=10))
    incident, _, _ = await client.app[RUNTIME].incidents.details(incident_id)
    step = Step(incident.next_level, incident.next_repeat)
    await client.app[RUNTIME].escalation.run_step(incident_id, step)


async def test_a_renamed_policy_is_taken_from_the_route_and_said_so(
    make_client: Any, clock: Any
) -> None:
    client = await make_client(directory=directory("db", 2, 0))
    incident_id = await open_incident(client)
    reload(client, directory("database", 2, 0))  # renamed: "db" is gone
    await fire_next(client, clock, incident_id)
    assert await timeline(client, incident_id) == [
        ("escalation.level", 1, 0, "db"),
        ("escalation.rerouted", None, None, "database"),
        ("escalation.level", 2, 0, "database"),
    ]
    await fire_next(client, clock, incident_id)
    kinds = [kind for kind, *_ in await timeline(client, incident_id)]
    assert kinds[-1] == "escalation.exhausted"
    incident, _, _ = await client.app[RUNTIME].incidents.details(incident_id)
    assert incident.policy == "database"


async def test_a_policy_cut_to_one_level_keeps_its_repeat_pass(
    make_client: Any, clock: Any
) -> None:
    client = await make_client(directory=directory("db", 2, 1))
    incident_id = await open_incident(client)
    reload(client, directory("db", 1, 1))  # level 2, which is pending, is gone
    await fire_next(client, clock, incident_id)
    assert await timeline(client, incident_id) == [
        ("escalation.level", 1, 0, "db"),
        ("escalation.policy_changed", None, None, "db"),
        ("escalation.level", 1, 1, "db"),
    ]
    await fire_next(client, clock, incident_id)
    assert (await timeline(client, incident_id))[-1][0] == "escalation.exhausted"


async def test_a_policy_that_grew_pages_its_new_level(make_client: Any, clock: Any) -> None:
    client = await make_client(directory=directory("db", 1, 0))
    incident_id = await open_incident(client)
    reload(client, directory("db", 2, 0))  # the pending exhaustion marker is level 2 now
    await fire_next(client, clock, incident_id)
    assert (await timeline(client, incident_id))[-1] == ("escalation.level", 2, 0, "db")
