"""Scale and restart: 100,000 open incidents, each with its level-2 step pending (due in an
hour), in the SQLite default, with a Redis of the benchmark's own.

1. Cold start: Redis is empty, so the start-up reconcile writes every timer.
2. Restart (SIGTERM, start again): the time until `/health` is 200, which requires a
   completed reconcile, i.e. every pending step compared with the job store.
3. FLUSHALL: the time until every step is back in the job store, found by the periodic
   reconciler (the default 30 s interval), while `/health` is polled and must keep answering
   within 1 s.
Peak RSS of the service throughout. Checks: the job store holds exactly the 100,000 pending
steps, each due when the database says, and no step fired.

The incidents are written straight into the database with the service's own table
definitions, as the state that 100,000 incidents leave after their first level fired:
opening them through the webhook would take minutes and measure something else.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import create_engine, insert

from harness import ROOT, CheckFailed, Oncall, check, directory_yaml, report, run_main
from oncall.db.models import alerts, escalation_jobs, incidents
from tests.support.ops import OPS
from tests.support.redis_server import RedisServer

HEALTH_BOUND = 1.0  # seconds /health must answer within during the rebuild


def seed(oncall: Oncall, count: int, due: datetime) -> None:
    """Migrate the database, then write `count` triggered incidents whose level 2 is due."""
    subprocess.run(
        [sys.executable, "app.py", "migrate"],
        cwd=ROOT,
        env=oncall.process.env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    engine = create_engine(f"sqlite:///{oncall.db_path}")
    opened = due - timedelta(hours=1)
    with engine.begin() as conn:
        for start in range(1, count + 1, 10_000):
            ids = range(start, min(start + 10_000, count + 1))
            conn.execute(
                insert(incidents),
                [
                    {
                        "id": i,
                        "integration": "prometheus",
                        "dedup_key": f"group-{i}",
                        "status": "triggered",
                        "title": f"Scale{i}",
                        "severity": "critical",
                        "labels": {"alertname": f"Scale{i}"},
                        "annotations": {},
                        "alert_count": 1,
                        "firing_count": 1,
                        "created_at": opened,
                        "updated_at": opened,
                        "route": "routes[0]",
                        "policy": "bench",
                        "next_level": 2,
                        "next_repeat": 0,
                        "next_due_at": due,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(alerts),
                [
                    {
                        "incident_id": i,
                        "integration": "prometheus",
                        "fingerprint": f"{i:016x}",
                        "starts_at": opened,
                        "status": "firing",
                        "labels": {"alertname": f"Scale{i}", "instance": "host-1"},
                        "annotations": {},
                        "created_at": opened,
                        "updated_at": opened,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(escalation_jobs),
                [
                    {
                        "id": f"incident:{i}:level:2:repeat:0",
                        "incident_id": i,
                        "level": 2,
                        "repeat": 0,
                        "due_at": due,
                        "state": "scheduled",
                        "attempts": 0,
                        "created_at": opened,
                        "updated_at": opened,
                    }
                    for i in ids
                ],
            )
    engine.dispose()


async def health(session: aiohttp.ClientSession, url: str) -> tuple[int, float, dict]:
    """Return /health's status, its latency in seconds and its body."""
    started = time.perf_counter()
    async with session.get(
        url + "/health", headers=OPS, timeout=aiohttp.ClientTimeout(10)
    ) as response:
        body = await response.json()
        return response.status, time.perf_counter() - started, body


def verify_store(oncall: Oncall, count: int, due: datetime) -> None:
    """Check the job store holds exactly the pending steps, each due at its time."""
    client = oncall.redis()
    try:
        run_times = client.zrange(
            f"{oncall.key_prefix}:escalation:run_times", 0, -1, withscores=True
        )
    finally:
        client.close()
    expected = {f"incident:{i}:level:2:repeat:0" for i in range(1, count + 1)}
    check(
        {key.decode() for key, _ in run_times} == expected,
        f"{len(run_times)} timers in the job store, not the {count} pending steps",
    )
    check(
        all(abs(score - due.timestamp()) < 0.001 for _, score in run_times),
        "a timer due at another time than the database says",
    )
    check(oncall.job_count("escalation") == count, "the jobs hash and run times disagree")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    count = args.count
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp))
        redis_server.start()
        oncall = Oncall(
            Path(tmp),
            directory_yaml("http://127.0.0.1:9", ("1m", "1h")),
            redis_port=redis_server.port,
        )
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        started = time.perf_counter()
        seed(oncall, count, due)
        figures: dict[str, object] = {
            "open_incidents": count,
            "seed_s": round(time.perf_counter() - started, 1),
        }
        peaks = []
        try:
            async with aiohttp.ClientSession() as session:
                started = time.perf_counter()
                await oncall.start()
                status, _, _ = await health(session, oncall.url)
                figures["cold_start_healthy_s"] = round(time.perf_counter() - started, 2)
                check(status == 200, f"/health {status} after the cold start")
                verify_store(oncall, count, due)
                peaks.append(oncall.peak_rss_mb())
                oncall.stop()

                started = time.perf_counter()
                await oncall.start()
                status, _, body = await health(session, oncall.url)
                figures["restart_healthy_s"] = round(time.perf_counter() - started, 2)
                check(status == 200, f"/health {status} after the restart")
                scheduler = body["checks"]["scheduler"]
                check(
                    scheduler["reconcile_runs"] >= 1 and scheduler["repairs"] == 0,
                    f"the restart's reconcile: {scheduler}",
                )
                verify_store(oncall, count, due)

                redis_server.flushall()
                started = time.perf_counter()
                worst = 0.0
                statuses: dict[int, int] = {}
                while oncall.job_count("escalation") < count:
                    if time.perf_counter() - started > 180:
                        raise CheckFailed("the job store was not rebuilt within 180 s")
                    status, latency, _ = await health(session, oncall.url)
                    statuses[status] = statuses.get(status, 0) + 1
                    worst = max(worst, latency)
                    await asyncio.sleep(0.2)  # the polling interval of a watching admin
                figures["flushall_rebuilt_s"] = round(time.perf_counter() - started, 2)
                figures["health_worst_ms_during_rebuild"] = round(worst * 1000, 1)
                figures["health_statuses_during_rebuild"] = statuses
                check(worst < HEALTH_BOUND, f"/health took {worst:.2f} s during the rebuild")
                verify_store(oncall, count, due)
                fired = oncall.scalar(
                    "SELECT count(*) FROM escalation_jobs WHERE state != 'scheduled'"
                )
                check(fired == 0, f"{fired} steps changed state; none was due")
                peaks.append(oncall.peak_rss_mb())
        finally:
            oncall.stop()
            redis_server.stop()
        figures["peak_rss_mb"] = max(peaks)
    report(
        "restart",
        figures,
        [
            f"{count} timers in the job store after the cold start, the restart and the flush, "
            "each due when the database says",
            "the restart's reconcile found nothing missing",
            "/health answered within 1 s throughout the rebuild",
            "no step fired early",
        ],
    )


if __name__ == "__main__":
    run_main(main)
