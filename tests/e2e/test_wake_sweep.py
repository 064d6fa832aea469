"""A snooze's end and an acknowledgement's timeout while Redis is stopped, under a real
`python app.py` on the test's own Redis: the database sweep (the incidents' `due`) wakes
the incident, which is triggered again and paged from level 1 while Redis is still down;
after Redis returns (empty) nothing fires again."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.e2e.test_redis_faults import _ok, health, own_redis, service
from tests.incidents.test_actions import ALICE, BOB, directory, paged, pages_reach
from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.receivers import HttpReceiver
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

__all__ = ["own_redis", "service"]  # the fixtures of test_redis_faults, used here

URL = "/api/v1/integrations/alertmanager"
WAIT = "3s"  # the snooze or the timeout: long enough to stop Redis before it ends

# (the action, its body, who takes it, the directory's ack timeout, the wake's timeline type)
CASES = [
    ("snooze", {"duration": WAIT}, BOB, None, "incident.snooze_ended"),
    ("acknowledge", None, ALICE, WAIT, "incident.ack_timeout"),
]


async def timeline(session: aiohttp.ClientSession, url: str, incident_id: int) -> list[str]:
    async with session.get(f"{url}/api/v1/incidents/{incident_id}", headers=ALICE) as response:
        return [event["type"] for event in (await response.json())["timeline"]]


@pytest.mark.parametrize(
    ("action", "body", "actor", "timeout", "woken"), CASES, ids=["snooze", "ack timeout"]
)
async def test_the_sweep_wakes_the_incident_while_redis_is_stopped(
    service: Any,
    own_redis: RedisServer,
    receiver: HttpReceiver,
    key_prefix: str,
    action: str,
    body: Any,
    actor: dict[str, str],
    timeout: str | None,
    woken: str,
) -> None:
    text = directory(receiver, ("1h", "1h", "1h"))  # nothing else falls due meanwhile
    if timeout is not None:
        route = f"  - {{policy: main, ack_timeout: {timeout}}}\n"
        text = text.replace("  - {policy: main}\n", route)
    assert timeout is None or "ack_timeout" in text
    oncall = await service(text)
    async with aiohttp.ClientSession() as session:
        webhook = make_webhook([make_alert("db1")])
        async with session.post(f"{oncall.url}{URL}", json=webhook, headers=AM_AUTH) as r:
            assert r.status == 200
            [incident_id] = (await r.json())["incidents"]
        await eventually(pages_reach(receiver, ["alice"]), what="level 1")
        path = f"{oncall.url}/api/v1/incidents/{incident_id}/{action}"
        async with session.post(path, headers=actor, json=body) as r:
            assert r.status == 200, await r.text()
        job = f"incident:{incident_id}:wake"

        async def armed() -> bool:
            return job in own_redis.job_ids(key_prefix)

        await eventually(armed, what="the wake's job in Redis")
        own_redis.stop()
        assert woken not in await timeline(session, oncall.url, incident_id), "woke too soon"

        await eventually(pages_reach(receiver, ["alice", "alice"]), what="level 1 again")
        status, answer = await health(session, oncall.url)
        assert status == 503 and "redis" in answer["failing"]
        assert own_redis.proc is not None and own_redis.proc.poll() is not None  # still down
        assert (await timeline(session, oncall.url, incident_id)).count(woken) == 1

        own_redis.start()  # back, empty
        await eventually(lambda: _ok(session, oncall.url), what="/health ok again")
        assert (await timeline(session, oncall.url, incident_id)).count(woken) == 1
        assert paged(receiver) == ["alice", "alice"]
