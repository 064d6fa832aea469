"""Redis in trouble under a real `python app.py`: paused (SIGSTOP, nothing answers) while
webhooks arrive, and stopped while steps fall due. The service keeps answering, says
so in /health, and pages on time from the database. The timings these tests only
record are measured by `bench/faults.py`."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_faults import webhook_directory
from tests.support.factories import AM_AUTH, make_alert, make_webhook
from tests.support.ops import OPS
from tests.support.process import ServiceProcess
from tests.support.receivers import HttpReceiver
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

URL = "/api/v1/integrations/alertmanager"
RATE = 20  # webhooks per second
PAUSE = 10.0  # seconds Redis stays paused


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.resume()  # a paused server would not die of SIGKILL until continued
    server.stop()


@pytest.fixture
async def service(
    tmp_path: Path, database_env: dict[str, str], key_prefix: str, own_redis: RedisServer
) -> AsyncIterator[Any]:
    """Start a real service on this test's Redis and database, with a directory the test
    writes first (`start(directory_text)`)."""
    started: list[ServiceProcess] = []

    async def start(directory: str) -> ServiceProcess:
        path = tmp_path / "directory.yaml"
        path.write_text(directory)
        env = {
            **database_env,
            "ONCALL_REDIS_PORT": str(own_redis.port),
            "ONCALL_REDIS_KEY_PREFIX": key_prefix,
            "ONCALL_DIRECTORY_PATH": str(path),
            "ONCALL_SCHEDULER_RECONCILE_INTERVAL": "5s",
            # Hundreds of incidents in a minute: every page is checked, none folded
            "ONCALL_PAGING_STORM_THRESHOLD": "100000/5m",
        }
        process = ServiceProcess(env, tmp_path / "oncall.log")
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        process.stop()


def pages(receiver: HttpReceiver) -> Counter[tuple[int, int]]:
    """Return how many distinct deliveries each (incident, level) got."""
    seen = {
        (body["delivery"], body["incident"]["id"], body["level"])
        for body in (json.loads(r.body) for r in receiver.requests)
        if body["event"] == "incident.triggered"
    }
    return Counter((incident, level) for _, incident, level in seen)


async def health(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(f"{url}/health", headers=OPS) as response:
        return response.status, await response.json()


async def test_a_paused_redis_stops_nothing(
    service: Any, own_redis: RedisServer, receiver: HttpReceiver
) -> None:
    """Redis SIGSTOPped for 10 s while webhooks arrive at 20 a second: every request is
    answered 200, /health names redis while it is still paused, and every incident gets
    its level-1 and level-2 pages, once each."""
    oncall = await service(webhook_directory(receiver.url, ("1s", "1h")))
    statuses: Counter[int | str] = Counter()
    latencies: list[float] = []
    incidents: list[int] = []
    named_redis = asyncio.Event()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def send(n: int) -> None:
            body = make_webhook([make_alert("db1", alertname=f"A{n}")], alertname=f"A{n}")
            started = time.perf_counter()
            try:
                async with session.post(f"{oncall.url}{URL}", json=body, headers=AM_AUTH) as r:
                    statuses[r.status] += 1
                    if r.status == 200:
                        incidents.extend((await r.json())["incidents"])
            except (aiohttp.ClientError, TimeoutError) as error:
                statuses[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)

        async def watch_health() -> None:
            while not named_redis.is_set():
                status, body = await health(session, oncall.url)
                if status == 503 and "redis" in body.get("failing", []):
                    named_redis.set()
                    return
                await asyncio.sleep(0.1)  # polling /health, not synchronising

        own_redis.pause()
        watcher = asyncio.create_task(watch_health())
        sends = []
        for n in range(int(PAUSE * RATE)):
            sends.append(asyncio.create_task(send(n)))
            await asyncio.sleep(1 / RATE)  # the load's pace
        await asyncio.gather(*sends)
        still_paused_when_named = named_redis.is_set()
        own_redis.resume()
        watcher.cancel()

        latencies.sort()
        print(
            "paused Redis:",
            dict(statuses),
            f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms,",
            f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms,",
            f"max {latencies[-1] * 1000:.1f} ms",
        )
        assert statuses == {200: int(PAUSE * RATE)}
        assert still_paused_when_named
        assert len(set(incidents)) == int(PAUSE * RATE)

        async def all_paged() -> Any:
            counts = pages(receiver)
            wanted = {(i, level) for i in incidents for level in (1, 2)}
            return counts if wanted <= set(counts) else None

        counts = await eventually(all_paged, timeout=60, what="every level-1 and level-2 page")
        assert set(counts.values()) == {1}
        await eventually(lambda: _ok(session, oncall.url), what="/health ok again")


async def _ok(session: aiohttp.ClientSession, url: str) -> bool:
    status, _ = await health(session, url)
    return status == 200


async def test_a_stopped_redis_delays_no_step(
    service: Any, own_redis: RedisServer, receiver: HttpReceiver, key_prefix: str
) -> None:
    """Redis stopped with level 2 pending: level 2 and the escalation's end fire from the
    database while Redis is still stopped, and after Redis returns (empty) nothing fires
    again."""
    oncall = await service(webhook_directory(receiver.url, ("3s", "2s")))
    async with aiohttp.ClientSession() as session:
        body = make_webhook([make_alert("db1")])
        async with session.post(f"{oncall.url}{URL}", json=body, headers=AM_AUTH) as r:
            assert r.status == 200
            [incident] = (await r.json())["incidents"]
        job = f"incident:{incident}:level:2:repeat:0"
        await eventually(lambda: _holds(own_redis, key_prefix, job), what="level 2's job")
        own_redis.stop()
        stopped_at = time.monotonic()

        async def level_two() -> Any:
            return pages(receiver)[(incident, 2)]

        await eventually(level_two, what="level 2 with Redis stopped")
        print(f"level 2 paged {time.monotonic() - stopped_at:.2f} s after Redis stopped")
        status, body = await health(session, oncall.url)
        assert status == 503 and "redis" in body["failing"]
        assert own_redis.proc is not None and own_redis.proc.poll() is not None  # still down

        own_redis.start()  # back, empty
        await eventually(lambda: _ok(session, oncall.url), what="/health ok again")
        assert pages(receiver) == {(incident, 1): 1, (incident, 2): 1}


async def _holds(server: RedisServer, key_prefix: str, job: str) -> bool:
    return job in server.job_ids(key_prefix)
