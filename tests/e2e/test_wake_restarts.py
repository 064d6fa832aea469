"""A snooze's end and an acknowledgement's timeout survive a SIGKILL and Redis losing every
timer before they fall due: after the restart the reconciler rebuilds the wake from the
incident row, the incident is triggered again once and level 1 pages once, on the real
service and both databases."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from oncall.db.engine import Database, make_engine
from oncall.db.models import incident_events, incidents
from oncall.settings import load_settings
from tests.e2e.test_action_restarts import levels_fired
from tests.incidents.test_actions import ALICE, BOB, directory, paged, pages_reach
from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.process import ServiceProcess
from tests.support.redis_server import delete_keys
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
WAIT = "4s"  # the snooze or the timeout: long enough to kill the service before it ends


async def wakes(db: Database, incident_id: int) -> Counter[str]:
    """Return how often the incident's snooze ended and its acknowledgement timed out."""

    def read(conn: Any) -> Counter[str]:
        return Counter(
            conn.execute(
                select(incident_events.c.type).where(
                    incident_events.c.incident_id == incident_id,
                    incident_events.c.type.in_(("incident.snooze_ended", "incident.ack_timeout")),
                )
            ).scalars()
        )

    return await db.run(read)


async def state(db: Database, incident_id: int) -> Any:
    def read(conn: Any) -> Any:
        return conn.execute(
            select(
                incidents.c.status,
                incidents.c.snoozed_until,
                incidents.c.ack_timeout_at,
                incidents.c.next_level,
            ).where(incidents.c.id == incident_id)
        ).one()

    return await db.run(read)


# (the action, its body, who takes it, the directory's ack timeout, the wake's timeline type)
CASES = [
    ("snooze", {"duration": WAIT}, BOB, None, "incident.snooze_ended"),
    ("acknowledge", None, ALICE, WAIT, "incident.ack_timeout"),
]


@pytest.mark.parametrize(
    ("action", "body", "actor", "timeout", "woken"), CASES, ids=["snooze", "ack timeout"]
)
async def test_the_wake_fires_once_across_a_kill_and_a_redis_flush(
    tmp_path, database_env, key_prefix, receiver, action, body, actor, timeout, woken
):
    path = tmp_path / "oncall.yaml"
    text = directory(receiver, ("1h", "1h", "1h"))  # nothing else falls due meanwhile
    if timeout is not None:
        text = text.replace(
            "  - {policy: main}\n", f"  - {{policy: main, ack_timeout: {timeout}}}\n"
        )
    assert timeout is None or "ack_timeout" in text
    path.write_text(text)
    env = {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(path),
        "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "1s",
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    settings_env = {k: v for k, v in env.items() if k.startswith("ONCALL_DATABASE")}
    db = Database(
        make_engine(load_settings({"ONCALL_SETTINGS": "/dev/null", **settings_env}).database)
    )
    try:
        await service.start()
        async with aiohttp.ClientSession(base_url=service.url) as session:
            webhook = make_webhook([make_alert("db1")])
            async with session.post(URL, json=webhook, headers=AM_AUTH) as response:
                [incident_id] = (await response.json())["incidents"]
            await eventually(pages_reach(receiver, ["alice"]), what="level 1")
            path_action = f"/api/v1/incidents/{incident_id}/{action}"
            async with session.post(path_action, headers=actor, json=body) as response:
                assert response.status == 200, await response.text()
        service.kill()
        delete_keys(key_prefix)  # Redis forgets every timer: only the database knows
        status, snoozed_until, ack_timeout_at, _ = await state(db, incident_id)
        assert status == "acknowledged", "woken before the kill"
        assert (snoozed_until if timeout is None else ack_timeout_at) is not None
        assert await wakes(db, incident_id) == Counter()

        await service.start()
        await eventually(pages_reach(receiver, ["alice", "alice"]), what="level 1 again")

        async def triggered() -> bool:
            return (await state(db, incident_id)) == ("triggered", None, None, 2)

        await eventually(triggered, what="triggered again, level 2 pending")
        assert await wakes(db, incident_id) == Counter({woken: 1})
        assert (await levels_fired(db, incident_id))[("main", 1)] == 2
        assert paged(receiver) == ["alice", "alice"]
    finally:
        service.stop()
        await db.close()
