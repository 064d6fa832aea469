"""A responder's actions on an incident through the API: notes, unacknowledge, escalate,
reassign, responders; each in the timeline with its actor, each paging as it says (pages
reach a real HTTP receiver; timers in Redis, on the fake clock unless they must fire)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from oncall.clock import system_clock
from tests.support.db import snapshot
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.redis_server import REDIS_HOST, REDIS_PORT
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}
USERS = ("alice", "bob", "carol", "dana")


def directory(receiver: Any, main: tuple[str, str, str] = ("5m", "5m", "5m")) -> str:
    """Policy `main` pages alice, bob, dana in turn (waits `main`); `db` pages dana then
    bob; carol is on no level. Each user's webhook is the receiver at /hook/NAME."""
    tokens = {"alice": ALICE_TOKEN, "bob": BOB_TOKEN}
    users = "\n".join(
        f"  - {{name: {name}, "
        + (f'api_token: "{tokens[name]}", ' if name in tokens else "")
        + f'contacts: [{{type: webhook, url: "{receiver.url}/{name}"}}]}}'
        for name in USERS
    )
    first, second, third = main
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}
users:
{users}
policies:
  - name: main
    repeat: 0
    levels:
      - {{notify: ["user:alice"], escalate_after: {first}}}
      - {{notify: ["user:bob"], escalate_after: {second}}}
      - {{notify: ["user:dana"], escalate_after: {third}}}
  - name: db
    repeat: 0
    levels:
      - {{notify: ["user:dana"], escalate_after: 5m}}
      - {{notify: ["user:bob"], escalate_after: 5m}}
routes:
  - {{policy: main}}
"""


async def open_incident(client: TestClient[Any, Any], name: str = "DiskFull") -> int:
    body = make_webhook([make_alert("db1", alertname=name)], alertname=name)
    response = await client.post(URL, json=body, headers=AM_AUTH)
    assert response.status == 200
    [incident_id] = (await response.json())["incidents"]
    return incident_id


def paged(receiver: Any) -> list[str]:
    """Return who the receiver has been paged for so far, in arrival order."""
    return [r.path.rsplit("/", 1)[-1] for r in receiver.requests]


def pages_reach(receiver: Any, expected: list[str]) -> Any:
    async def check() -> Any:
        return sorted(paged(receiver)) == sorted(expected)

    return check


async def act(
    client: TestClient[Any, Any],
    incident_id: int,
    action: str,
    body: Any = None,
    headers: dict[str, str] = BOB,
    status: int = 200,
) -> dict[str, Any]:
    kwargs = {} if body is None else {"json": body}
    response = await client.post(
        f"/api/v1/incidents/{incident_id}/{action}", headers=headers, **kwargs
    )
    assert response.status == status, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def settled(client: TestClient[Any, Any]) -> Any:
    """Return a snapshot of the incident tables once no page is pending (a page's outcome
    is written after it is sent, by itself)."""

    async def quiet() -> Any:
        response = await client.get("/api/v1/notifications?status=pending", headers=ALICE)
        return not (await response.json())["notifications"]

    await eventually(quiet, what="every page sent")
    return await snapshot(client)


async def timeline(client: TestClient[Any, Any], incident_id: int) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    return list((await response.json())["timeline"])


def fired(events: list[dict[str, Any]]) -> list[tuple[str, int, list[str]]]:
    """Return the escalation levels fired: (policy, level, users paged), in order."""
    return [
        (e["detail"]["policy"], e["detail"]["level"], e["detail"]["paged"])
        for e in events
        if e["type"] == "escalation.level"
    ]


def timer_ids(key_prefix: str, incident_id: int) -> set[str]:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = {k.decode() for k in client.hkeys(f"{key_prefix}:escalation:jobs")}
    finally:
        client.close()
    return {k for k in keys if k.startswith(f"incident:{incident_id}:")}


async def started(make_client: Any, receiver: Any, **kwargs: Any) -> TestClient[Any, Any]:
    main = kwargs.pop("main", ("5m", "5m", "5m"))
    return await make_client(directory=directory(receiver, main), **kwargs)


# Notes.


async def test_a_note_is_in_the_timeline_with_its_author_and_cleaned(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "notes", {"text": "disk\r\nfull\x07 again\tok"}, status=201)
    [note] = [e for e in await timeline(client, incident_id) if e["type"] == "incident.note"]
    assert note["actor"] == "bob"
    assert note["detail"] == {"text": "disk\nfull again\tok"}


@pytest.mark.parametrize(
    "body",
    [
        {"text": ""},  # empty
        {"text": " \n\t"},  # only blanks
        {"text": "\x07\x08"},  # nothing left once cleaned
        {"text": "é" * 2049},  # 4098 bytes of UTF-8 in 2049 characters
        {"text": 42},  # not a string
        {},  # missing
    ],
    ids=["empty", "blank", "only controls", "over 4 KB", "number", "missing"],
)
async def test_a_bad_note_is_a_400_naming_text_and_writes_nothing(make_client, receiver, body):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    before = await settled(client)
    answer = await act(client, incident_id, "notes", body, status=400)
    assert answer["field"] == "text"
    assert await snapshot(client) == before


async def test_a_note_of_4_kb_is_taken(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "notes", {"text": "é" * 2048}, status=201)


# Unacknowledge.


async def test_unacknowledge_triggers_again_and_pages_level_1_again(
    make_client, receiver, key_prefix, clock
):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await eventually(pages_reach(receiver, ["alice"]), what="alice's first page")
    await act(client, incident_id, "acknowledge", headers=ALICE)
    answer = await act(client, incident_id, "unacknowledge")
    assert answer["status"] == "triggered" and answer["acknowledged_by"] is None
    assert answer["next_step"]["level"] == 2
    await eventually(pages_reach(receiver, ["alice", "alice"]), what="alice paged again")
    events = await timeline(client, incident_id)
    assert [e["actor"] for e in events if e["type"] == "incident.unacknowledged"] == ["bob"]
    assert fired(events) == [("main", 1, ["alice"]), ("main", 1, ["alice"])]
    assert timer_ids(key_prefix, incident_id) == {f"incident:{incident_id}:level:2:repeat:0"}


async def test_unacknowledge_a_triggered_incident_changes_nothing(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    before = await settled(client)
    answer = await act(client, incident_id, "unacknowledge")
    assert answer["status"] == "triggered"
    assert await snapshot(client) == before


# Escalate.


async def test_escalate_fires_the_next_level_now_then_the_one_after_its_wait(make_client, receiver):
    # Level 1 would wait an hour; escalated by hand, level 2 pages now and level 3 after
    # level 2's own wait, on the real clock.
    client = await started(make_client, receiver, main=("1h", "1s", "1h"), clock=system_clock)
    incident_id = await open_incident(client)
    answer = await act(client, incident_id, "escalate")
    assert answer["status"] == "triggered"
    await eventually(pages_reach(receiver, ["alice", "bob", "dana"]), what="level 3's page")
    events = await timeline(client, incident_id)
    assert fired(events) == [("main", 1, ["alice"]), ("main", 2, ["bob"]), ("main", 3, ["dana"])]
    [escalated] = [e for e in events if e["type"] == "incident.escalated"]
    assert escalated["actor"] == "bob"
    assert escalated["detail"] == {"level": 2, "repeat": 0, "retriggered": False}


async def test_escalate_to_a_named_level_fires_it_and_goes_on_from_it(
    make_client, receiver, key_prefix
):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    answer = await act(client, incident_id, "escalate", {"level": 3})
    assert answer["next_step"]["level"] == 4  # the timer after the last level: exhaustion
    await eventually(pages_reach(receiver, ["alice", "dana"]), what="level 3's page")
    assert timer_ids(key_prefix, incident_id) == {f"incident:{incident_id}:exhausted"}
    # Back to a level already paged: it pages again.
    await act(client, incident_id, "escalate", {"level": 1})
    await eventually(pages_reach(receiver, ["alice", "dana", "alice"]), what="level 1 again")
    assert timer_ids(key_prefix, incident_id) == {f"incident:{incident_id}:level:2:repeat:0"}


async def test_escalating_an_acknowledged_incident_triggers_it_again(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    # Level 1's page first: acknowledged before it is sent, it is cancelled instead.
    await eventually(pages_reach(receiver, ["alice"]), what="level 1's page")
    await act(client, incident_id, "acknowledge", headers=ALICE)
    answer = await act(client, incident_id, "escalate")
    assert answer["status"] == "triggered"
    await eventually(pages_reach(receiver, ["alice", "bob"]), what="level 2's page")
    [escalated] = [
        e for e in await timeline(client, incident_id) if e["type"] == "incident.escalated"
    ]
    assert escalated["detail"]["retriggered"] is True


@pytest.mark.parametrize(
    "level",
    [0, 4, -1, "2", True, 2.5],
    ids=["zero", "past the last", "negative", "a string", "a boolean", "a fraction"],
)
async def test_escalate_to_a_level_the_policy_lacks_is_a_400_naming_level(
    make_client, receiver, level
):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    before = await settled(client)
    answer = await act(client, incident_id, "escalate", {"level": level}, status=400)
    assert answer["field"] == "level"
    assert await snapshot(client) == before


async def test_escalate_past_the_last_level_without_a_level_is_a_409(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "escalate", {"level": 3})
    # Pending now is the exhaustion timer: there is no next level to fire.
    answer = await act(client, incident_id, "escalate", status=409)
    assert answer["field"] == "level"


# Reassign.


async def test_reassign_to_a_user_pages_them_and_nothing_else_later(
    make_client, receiver, key_prefix
):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    answer = await act(client, incident_id, "reassign", {"to": "user:dana"})
    assert answer["policy"] == "user:dana"
    await eventually(pages_reach(receiver, ["alice", "dana"]), what="dana's page")

    async def exhausted() -> Any:
        events = await timeline(client, incident_id)
        return any(e["type"] == "escalation.exhausted" for e in events) and events

    events = await eventually(exhausted, what="the escalation exhausted")
    assert fired(events) == [("main", 1, ["alice"]), ("user:dana", 1, ["dana"])]
    [reassigned] = [e for e in events if e["type"] == "incident.reassigned"]
    assert reassigned["actor"] == "bob"
    assert reassigned["detail"] == {"from": "main", "to": "user:dana", "retriggered": False}
    # Nothing is left to fire: no pending step in the database, no timer in Redis.
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    assert (await response.json())["next_step"] is None
    await eventually(lambda: _true(not timer_ids(key_prefix, incident_id)), what="the timers gone")
    assert sorted(paged(receiver)) == ["alice", "dana"]


async def _true(value: bool) -> bool:
    return value


async def test_reassign_to_a_policy_starts_its_level_1(make_client, receiver, key_prefix):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "acknowledge", headers=ALICE)
    answer = await act(client, incident_id, "reassign", {"to": "policy:db"})
    assert answer["status"] == "triggered" and answer["policy"] == "db"
    assert answer["next_step"]["level"] == 2
    await eventually(pages_reach(receiver, ["alice", "dana"]), what="db's level 1")
    assert fired(await timeline(client, incident_id))[-1] == ("db", 1, ["dana"])
    assert timer_ids(key_prefix, incident_id) == {f"incident:{incident_id}:level:2:repeat:0"}
    # The same target again, the incident triggered: nothing changes.
    before = await settled(client)
    await act(client, incident_id, "reassign", {"to": "policy:db"})
    assert await snapshot(client) == before


@pytest.mark.parametrize(
    "body",
    [
        {"to": "user:nobody"},  # unknown user
        {"to": "policy:nope"},  # unknown policy
        {"to": "schedule:primary"},  # not a kind reassign takes
        {"to": "bob"},  # no kind
        {"to": 7},  # not a string
        {},  # missing
    ],
    ids=["unknown user", "unknown policy", "schedule", "no kind", "number", "missing"],
)
async def test_reassign_to_an_unknown_target_is_a_400_naming_to(make_client, receiver, body):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    before = await settled(client)
    answer = await act(client, incident_id, "reassign", body, status=400)
    assert answer["field"] == "to"
    assert await snapshot(client) == before


# Responders.


async def test_a_responder_is_paged_once_and_the_escalation_goes_on_unchanged(
    make_client, receiver
):
    # Level 1's wait is long enough that level 2 cannot fire between these requests on a
    # loaded machine (with 1 s it did, once, in CI), short enough to await its page.
    client = await started(make_client, receiver, main=("5s", "1h", "1h"), clock=system_clock)
    incident_id = await open_incident(client)
    before = await client.get(f"/api/v1/incidents/{incident_id}", headers=ALICE)
    next_step = (await before.json())["next_step"]
    answer = await act(client, incident_id, "responders", {"user": "carol"})
    assert answer["paged"] is True and answer["next_step"] == next_step
    again = await act(client, incident_id, "responders", {"user": "carol"})
    assert again["paged"] is False
    # Level 2 still comes when level 1's wait is over.
    await eventually(pages_reach(receiver, ["alice", "carol", "bob"]), what="level 2's page")
    events = await timeline(client, incident_id)
    assert fired(events) == [("main", 1, ["alice"]), ("main", 2, ["bob"])]
    added = [e for e in events if e["type"] == "incident.responder_added"]
    assert [(e["actor"], e["detail"]) for e in added] == [("bob", {"user": "carol"})]
    assert paged(receiver).count("carol") == 1


@pytest.mark.parametrize(
    "body",
    [{"user": "nobody"}, {"user": 3}, {}],
    ids=["unknown user", "number", "missing"],
)
async def test_a_responder_who_is_not_a_user_is_a_400_naming_user(make_client, receiver, body):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    before = await settled(client)
    answer = await act(client, incident_id, "responders", body, status=400)
    assert answer["field"] == "user"
    assert await snapshot(client) == before


# What does not apply, and what does not exist.


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("unacknowledge", None),
        ("escalate", None),
        ("reassign", {"to": "user:dana"}),
        ("responders", {"user": "carol"}),
    ],
)
async def test_an_action_on_a_resolved_incident_is_a_409(make_client, receiver, action, body):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "resolve", headers=ALICE)
    before = await settled(client)
    await act(client, incident_id, action, body, status=409)
    assert await snapshot(client) == before


async def test_adding_a_responder_to_an_acknowledged_incident_is_a_409(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "acknowledge", headers=ALICE)
    await act(client, incident_id, "responders", {"user": "carol"}, status=409)


async def test_a_note_on_a_resolved_incident_is_taken(make_client, receiver):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    await act(client, incident_id, "resolve", headers=ALICE)
    await act(client, incident_id, "notes", {"text": "root cause: cron"}, status=201)


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("notes", {"text": "x"}),
        ("unacknowledge", None),
        ("escalate", None),
        ("escalate", {"level": 1}),
        ("reassign", {"to": "user:dana"}),
        ("responders", {"user": "carol"}),
    ],
)
async def test_an_action_on_an_unknown_incident_is_a_404(make_client, receiver, action, body):
    client = await started(make_client, receiver)
    answer = await act(client, 999, action, body, status=404)
    assert answer["field"] == "id"


@pytest.mark.parametrize("action", ["notes", "escalate", "reassign", "responders"])
async def test_a_body_that_is_not_an_object_is_a_400(make_client, receiver, action):
    client = await started(make_client, receiver)
    incident_id = await open_incident(client)
    answer = await act(client, incident_id, action, [1, 2], status=400)
    assert answer["field"] == "$"
