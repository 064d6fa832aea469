"""Timers survive Redis losing everything, Redis being down, and the service being killed."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from oncall.clock import system_clock
from oncall.db.engine import Database, make_engine
from oncall.db.models import incident_events, incidents
from oncall.web.keys import RUNTIME
from tests.support.factories import AM_AUTH, fast_directory, make_alert, make_webhook
from tests.support.ops import OPS
from tests.support.process import ServiceProcess
from tests.support.redis_server import RedisServer
from tests.support.waiting import counted, eventually

URL = "/api/v1/integrations/alertmanager"


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def webhook(name: str) -> dict[str, Any]:
    return make_webhook([make_alert("db1", alertname=name)], alertname=name)


async def steps_fired(db: Database) -> Counter[tuple[int, str, int, int]]:
    """Return how often each (incident, event type, level, repeat) was recorded."""

    def read(conn: Any) -> Counter[tuple[int, str, int, int]]:
        rows = conn.execute(
            select(
                incident_events.c.incident_id, incident_events.c.type, incident_events.c.detail
            ).where(incident_events.c.type.like("escalation.%"))
        )
        return Counter((i, t, d.get("level", 0), d.get("repeat", 0)) for i, t, d in rows)

    return await db.run(read)


async def next_due(db: Database, incident_id: int) -> datetime | None:
    def read(conn: Any) -> datetime | None:
        return conn.execute(
            select(incidents.c.next_due_at).where(incidents.c.id == incident_id)
        ).scalar_one()

    return await db.run(read)


async def sleep_until(moment: datetime) -> None:
    """Let wall-clock time pass until `moment`: the test needs steps to fall due."""
    await asyncio.sleep(max(0.0, (moment - system_clock()).total_seconds()) + 0.2)


def fired(counts: Counter[Any], incident_id: int, level: int, repeat: int = 0) -> int:
    return counts[(incident_id, "escalation.level", level, repeat)]


async def test_a_redis_flush_is_noticed_and_every_timer_restored(
    make_client, own_redis, key_prefix
):
    # An hour between periodic passes: only noticing the flush itself restores the timers
    # within the test's patience.
    client = await make_client(
        directory=fast_directory(levels=("2s", "2s"), repeat=0),
        clock=system_clock,
        redis_port=str(own_redis.port),
        scheduler_reconcile_interval="1h",
    )
    db = client.app[RUNTIME].db
    ids = []
    for name in ("A", "B", "C"):
        response = await client.post(URL, json=webhook(name), headers=AM_AUTH)
        ids += (await response.json())["incidents"]
    expected = {f"incident:{i}:level:2:repeat:0" for i in ids}
    await eventually(lambda: _value(own_redis.job_ids(key_prefix) == expected), what="L2 jobs")
    own_redis.flushall()
    assert own_redis.job_ids(key_prefix) == set()
    # Rebuilt: the jobs are back, or (their steps due meanwhile on a loaded machine) already
    # fired again from Redis and gone; either way the pass records its repairs.
    await eventually(
        lambda: _value(counted(client, "oncall_reconcile_repairs") >= 3), what="repairs recorded"
    )
    counts = await eventually(lambda: _all_exhausted(db, ids), what="exhaustion")
    for incident_id in ids:
        assert fired(counts, incident_id, 1) == 1 and fired(counts, incident_id, 2) == 1


async def _value(value: Any) -> Any:
    return value


async def _all_exhausted(db: Database, ids: list[int]) -> Any:
    counts = await steps_fired(db)
    done = all(counts[(i, "escalation.exhausted", 0, 0)] for i in ids)
    return counts if done else None


async def _health(client: Any, status: int) -> Any:
    response = await client.get("/health", headers=OPS)
    return await response.json() if response.status == status else None


async def test_with_redis_down_alerts_are_taken_and_steps_fire_from_the_database(
    make_client, own_redis, key_prefix
):
    """Redis stopped: /health names it, new alerts are taken, and the steps that fall due
    meanwhile fire from the database sweep, each once, also after Redis returns empty."""
    client = await make_client(
        directory=fast_directory(levels=("2s", "2s"), repeat=0),
        clock=system_clock,
        redis_port=str(own_redis.port),
        scheduler_reconcile_interval="1s",
    )
    db = client.app[RUNTIME].db
    response = await client.post(URL, json=webhook("Before"), headers=AM_AUTH)
    [before] = (await response.json())["incidents"]
    await eventually(
        lambda: _value(own_redis.job_ids(key_prefix) == {f"incident:{before}:level:2:repeat:0"}),
        what="level 2 pending",
    )

    own_redis.stop()
    response = await client.post(URL, json=webhook("During"), headers=AM_AUTH)
    assert response.status == 200
    [during] = (await response.json())["incidents"]
    body = await eventually(lambda: _health(client, 503), what="/health failing")
    assert "redis" in body["failing"]
    # Both incidents climb to exhaustion with Redis still stopped.
    counts = await eventually(lambda: _all_exhausted(db, [before, during]), what="the sweep")
    assert not client.app[RUNTIME].timers.health.healthy
    for incident in (before, during):
        assert fired(counts, incident, 1) == 1 and fired(counts, incident, 2) == 1

    own_redis.start()  # back, and empty
    await eventually(lambda: _health(client, 200), what="/health ok again")
    counts = await steps_fired(db)
    for incident in (before, during):
        assert fired(counts, incident, 1) == 1 and fired(counts, incident, 2) == 1


async def test_every_step_fires_once_after_the_service_is_killed(
    tmp_path, database_env, key_prefix
):
    directory = tmp_path / "fast.yaml"
    directory.write_text(fast_directory(levels=("5s", "3s"), repeat=0))
    env = {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(directory),
        "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "1s",
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    settings_env = {k: v for k, v in env.items() if k.startswith("ONCALL_DATABASE")}
    from oncall.settings import load_settings

    db = Database(
        make_engine(load_settings({"ONCALL_SETTINGS": "/dev/null", **settings_env}).database)
    )
    try:
        await service.start()
        ids = []
        async with aiohttp.ClientSession() as session:
            for name in ("A", "B", "C", "D"):
                async with session.post(
                    f"{service.url}{URL}", json=webhook(name), headers=AM_AUTH
                ) as response:
                    assert response.status == 200
                    ids += (await response.json())["incidents"]
        await eventually(lambda: _levels_everywhere(db, ids, 1), what="level 1 everywhere")
        service.kill()  # SIGKILL with level 2 pending (on a loaded machine, maybe not all)
        pending = [
            i
            for i in ids
            if await next_due(db, i) is not None and fired(await steps_fired(db), i, 2) == 0
        ]
        assert pending, "every level 2 fired before the kill: nothing left to prove"
        await sleep_until(max([await next_due(db, i) for i in pending]))
        counts = await steps_fired(db)
        assert [fired(counts, i, 2) for i in pending] == [0] * len(pending)
        await service.start()
        counts = await eventually(lambda: _all_exhausted(db, ids), what="catch-up")
        for incident_id in ids:
            assert fired(counts, incident_id, 1) == 1
            assert fired(counts, incident_id, 2) == 1
            assert counts[(incident_id, "escalation.exhausted", 0, 0)] == 1
    finally:
        service.stop()
        await db.close()


async def _levels_everywhere(db: Database, ids: list[int], level: int) -> Any:
    counts = await steps_fired(db)
    return all(fired(counts, i, level) for i in ids)


async def test_pending_notifications_are_delivered_after_the_service_is_killed(
    tmp_path, database_env, key_prefix, receiver
):
    from oncall.db.models import notifications
    from tests.support.factories import ALICE_TOKEN, AM_TOKEN

    receiver.default = 503  # the receiver is down: the page waits for its retry
    directory = tmp_path / "notify.yaml"
    directory.write_text(f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts: [{{type: webhook, url: "{receiver.url}"}}]
policies: [{{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}]
routes: [{{policy: p}}]
""")
    env = {
        **database_env,
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(directory),
        "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "1s",
    }
    service = ServiceProcess(env, tmp_path / "oncall.log")
    from oncall.settings import load_settings

    db = Database(
        make_engine(
            load_settings(
                {
                    "ONCALL_SETTINGS": "/dev/null",
                    **{k: v for k, v in env.items() if k.startswith("ONCALL_DATABASE")},
                }
            ).database
        )
    )

    async def outbox() -> list[Any]:
        def read(conn: Any) -> list[Any]:
            return list(conn.execute(select(notifications.c.status, notifications.c.attempts)))

        return await db.run(read)

    try:
        await service.start()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{service.url}{URL}", json=webhook("Paged"), headers=AM_AUTH) as response,
        ):
            assert response.status == 200
        await eventually(lambda: _value(len(receiver.requests) >= 1), what="first attempt")
        await eventually(lambda: _attempted(outbox), what="attempt recorded")
        service.kill()
        assert [status for status, _ in await outbox()] == ["pending"]
        receiver.default = 200  # the receiver recovers while oncall is down
        await service.start()
        rows = await eventually(lambda: _delivered(outbox), what="delivery after restart")
        assert rows == [("sent", 2)]
        assert (
            receiver.requests[-1].headers["X-Oncall-Delivery"]
            == (receiver.requests[0].headers["X-Oncall-Delivery"])
        )
    finally:
        service.stop()
        await db.close()


async def _attempted(outbox: Any) -> Any:
    rows = await outbox()
    return rows if rows and rows[0][1] >= 1 and rows[0][0] == "pending" else None


async def _delivered(outbox: Any) -> Any:
    rows = await outbox()
    return [tuple(r) for r in rows] if rows and rows[0][0] == "sent" else None
