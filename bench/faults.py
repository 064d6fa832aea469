"""Redis in trouble, against a real `python app.py` and a redis-server of this run's own.

Paused: Redis is SIGSTOPped (its socket stays open and nothing answers) for 10 s while
webhooks of new groups arrive at 20 a second. Reports the webhooks' latency, how long
/health took to fail naming redis, and checks that every request was answered 200 and
every incident got its level-1 and level-2 pages, once each.

Stopped: an incident whose level 2 falls due 10 s into a 60 s Redis outage. Reports how
late level 2 fired (its fired_at minus its due_at, as the service recorded them) and
checks it fired once in all, also after Redis came back empty.

`python bench/faults.py [--pause 10] [--rate 20] [--outage 60]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from harness import (
    ROOT,
    WEBHOOK,
    Oncall,
    Receiver,
    alert,
    auth,
    check,
    directory_yaml,
    open_loop,
    percentiles,
    report,
    run_main,
    wait_for,
    webhook,
)

sys.path.insert(0, str(ROOT))
from tests.support.ops import OPS
from tests.support.redis_server import RedisServer

LEVEL2_INTO_OUTAGE = 10.0  # seconds from the outage's start to level 2's due time


async def health_fails_naming_redis(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(url + "/health", headers=OPS) as response:
        body = await response.json()
        return response.status == 503 and "redis" in body.get("failing", [])


async def paused(pause: float, rate: float) -> dict[str, Any]:
    """Send webhooks at `rate` while Redis is paused for `pause` seconds; return the figures.
    Raises CheckFailed."""
    receiver = Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp))
        redis_server.start()
        oncall = Oncall(Path(tmp), directory_yaml(receiver.url, ("1s", "1h")), redis_server.port)
        await oncall.start()
        count = int(pause * rate)
        latencies: list[float] = []
        statuses: dict[Any, int] = {}
        incidents: list[int] = []
        named_after: list[float] = []
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

                async def send(i: int) -> None:
                    body = webhook(f"Pause{i:05d}", [alert(f"Pause{i:05d}", "host-1")])
                    started = time.perf_counter()
                    try:
                        async with session.post(
                            oncall.url + WEBHOOK, data=body, headers=auth()
                        ) as response:
                            statuses[response.status] = statuses.get(response.status, 0) + 1
                            if response.status == 200:
                                incidents.extend((await response.json())["incidents"])
                    except (aiohttp.ClientError, TimeoutError) as error:
                        kind = type(error).__name__
                        statuses[kind] = statuses.get(kind, 0) + 1
                    latencies.append((time.perf_counter() - started) * 1000)

                async def watch() -> None:
                    started = time.perf_counter()
                    while not await health_fails_naming_redis(session, oncall.url):
                        await asyncio.sleep(0.05)  # polling /health, not synchronising
                    named_after.append(time.perf_counter() - started)

                redis_server.pause()
                watcher = asyncio.create_task(watch())
                await open_loop(send, count, rate)
                named_while_paused = watcher.done()
                redis_server.resume()
                if not watcher.done():
                    watcher.cancel()
                check(statuses == {200: count}, f"webhook answers while paused: {statuses}")
                check(named_while_paused, "/health did not name redis while it was paused")
                await receiver.wait_pages(2 * count, 120)
                pages = receiver.pages_per()
                for level in (1, 2):
                    paged = [n for (_, i, lvl, _), n in pages.items() if lvl == level]
                    check(len(paged) == count, f"{len(paged)} incidents paged at level {level}")
                    check(all(n == 1 for n in paged), f"a level-{level} page was sent twice")
        finally:
            oncall.stop()
            redis_server.resume()
            redis_server.stop()
            await receiver.stop()
    figures: dict[str, Any] = {"paused_s": pause, "paused_requests": count}
    figures.update({f"paused_latency_ms_{k}": v for k, v in percentiles(latencies).items()})
    figures["health_names_redis_s"] = round(named_after[0], 2)
    return figures


async def stopped(outage: float) -> dict[str, Any]:
    """Stop Redis for `outage` seconds with level 2 due LEVEL2_INTO_OUTAGE into it; return
    the figures. Raises CheckFailed."""
    receiver = Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp))
        redis_server.start()
        directory = directory_yaml(receiver.url, (f"{LEVEL2_INTO_OUTAGE:.0f}s", "1h"))
        oncall = Oncall(Path(tmp), directory, redis_server.port)
        await oncall.start()
        try:
            async with aiohttp.ClientSession() as session:
                body = webhook("Outage", [alert("Outage", "host-1")])
                async with session.post(oncall.url + WEBHOOK, data=body, headers=auth()) as r:
                    check(r.status == 200, f"webhook answered {r.status}")
                await wait_for(lambda: oncall.job_count() == 1, 10, "level 2's job in Redis")
                redis_server.stop()
                stopped_at = time.perf_counter()
                fired = (
                    "SELECT due_at, fired_at FROM escalation_jobs "
                    "WHERE level = 2 AND state = 'fired'"
                )
                await wait_for(lambda: bool(oncall.query(fired)), outage, "level 2 firing")
                check(time.perf_counter() - stopped_at < outage, "level 2 fired after the outage")
                await asyncio.sleep(max(0.0, outage - (time.perf_counter() - stopped_at)))
                redis_server.start()  # back, and empty
                await wait_for(
                    lambda: oncall.job_count() == 1,
                    30,
                    "the reconciler rebuilding the next step's job",
                )
                await asyncio.sleep(2)  # a job that would fire twice has had its chance
                [(due, fired_at)] = oncall.query(fired)
                levels = oncall.query(
                    "SELECT count(*) FROM incident_events WHERE type = 'escalation.level' "
                    "AND json_extract(detail, '$.level') = 2"
                )
                check(levels == [(1,)], f"level 2 fired {levels[0][0]} times")
                check(len(receiver.pages_per()) == 2, "one page each at levels 1 and 2")
        finally:
            oncall.stop()
            redis_server.stop()
            await receiver.stop()
    lateness = (datetime.fromisoformat(fired_at) - datetime.fromisoformat(due)).total_seconds()
    return {"outage_s": outage, "stopped_level2_lateness_s": round(lateness, 2)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--outage", type=float, default=60.0)
    args = parser.parse_args()
    figures = await paused(args.pause, args.rate)
    figures.update(await stopped(args.outage))
    report(
        "faults",
        figures,
        [
            f"Redis paused {args.pause:.0f} s: every webhook answered 200",
            "/health named redis while Redis was paused",
            "every incident paged once at level 1 and once at level 2",
            f"Redis stopped {args.outage:.0f} s: level 2 fired during it, once in all",
        ],
    )


if __name__ == "__main__":
    run_main(main)
