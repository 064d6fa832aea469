"""A responder's action sets a new schedule; a SIGKILL and Redis losing its timers between the
action and its next step do not lose it: the reconciler rebuilds the timer from the
database and the step fires once, on the real service and both databases."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from oncall.db.engine import Database, make_engine
from oncall.db.models import incident_events, incidents
from oncall.settings import load_settings
from tests.incidents.test_actions import ALICE, BOB, directory, paged, pages_reach
from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.process import ServiceProcess
from tests.support.redis_server import delete_keys
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"


async def levels_fired(db: Database, incident_id: int) -> Counter[tuple[str, int]]:
    """Return how often each (policy, level) fired for the incident."""

    def read(conn: Any) -> Counter[tuple[str, int]]:
        rows = conn.execute(
            select(incident_events.c.detail).where(
                incident_events.c.incident_id == incident_id,
                incident_events.c.type == "escalation.level",
            )
        ).scalars()
        return Counter((d["policy"], d["level"]) for d in rows)

    return await db.run(read)


async def pending(db: Database, incident_id: int) -> Any:
    def read(conn: Any) -> Any:
        return conn.execute(
            select(incidents.c.next_level, incidents.c.next_due_at).where(
                incidents.c.id == incident_id
            )
        ).one()

    return await db.run(read)


# (action, its body, the policy's waits, who the action pages, who its next step pages)
CASES = [
    ("escalate", None, ("1h", "3s", "1h"), ["bob"], "dana"),
    ("unacknowledge", None, ("3s", "1h", "1h"), ["alice"], "bob"),
]


@pytest.mark.parametrize(
    ("action", "body", "waits", "now", "then"), CASES, ids=[c[0] for c in CASES]
)
async def test_the_step_after_an_action_fires_once_across_a_kill_and_a_redis_flush(
    tmp_path, database_env, key_prefix, receiver, action, body, waits, now, then
):
    path = tmp_path / "oncall.yaml"
    path.write_text(directory(receiver, waits))
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
            if action == "unacknowledge":
                path_ack = f"/api/v1/incidents/{incident_id}/acknowledge"
                async with session.post(path_ack, headers=ALICE) as response:
                    assert response.status == 200
            path_action = f"/api/v1/incidents/{incident_id}/{action}"
            async with session.post(path_action, headers=BOB, json=body) as response:
                assert response.status == 200, await response.text()
        await eventually(pages_reach(receiver, ["alice", *now]), what="the action's page")
        service.kill()
        delete_keys(key_prefix)  # Redis forgets every timer: only the database knows
        level, due = await pending(db, incident_id)
        fired = await levels_fired(db, incident_id)
        assert due is not None and fired[("main", level)] == 0, "fired before the kill"
        await service.start()
        await eventually(
            pages_reach(receiver, ["alice", *now, then]), what="the next step after restart"
        )
        fired = await levels_fired(db, incident_id)
        assert fired[("main", level)] == 1
        assert sorted(paged(receiver)) == sorted(["alice", *now, then])
    finally:
        service.stop()
        await db.close()
