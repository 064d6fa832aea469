"""Escalation timing under load: incidents opened through the webhook at a steady rate, each
paging a webhook receiver at level 1 (with the incident) and level 2 (`escalate_after: 10s`,
a Redis timer). Reports the lateness of every level-2 step (fired minus due, both as the
service recorded them), then searches the escalation capacity: the highest steady rate of
new incidents at which level-2 lateness p99 stays under 1 s.

Checks after each run: every level-2 step fired exactly once, every incident got exactly one
page at each level, and Redis holds exactly the timers still due (one per incident).

`python bench/escalation.py [--count N] [--rate R] [--capacity R1,R2,...]`
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime
from pathlib import Path

import aiohttp

from harness import (
    WEBHOOK,
    CheckFailed,
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

ESCALATE_AFTER = 10.0  # seconds, level 1 to level 2
CAPACITY_SECONDS = 20  # how long each capacity step sends at its rate


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def run(count: int, rate: float) -> dict[str, object]:
    """Open `count` incidents at `rate` per second and measure level-2 lateness; return the
    figures. Raises CheckFailed when a step or page is missing or doubled."""
    receiver = Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        oncall = Oncall(Path(tmp), directory_yaml(receiver.url, (f"{ESCALATE_AFTER:.0f}s", "1h")))
        await oncall.start()
        bodies = [webhook(f"Esc{i:06d}", [alert(f"Esc{i:06d}", "host-1")]) for i in range(count)]
        connector = aiohttp.TCPConnector(limit=256)
        statuses: dict[int, int] = {}
        try:
            async with aiohttp.ClientSession(connector=connector) as session:

                async def send(i: int) -> None:
                    async with session.post(
                        oncall.url + WEBHOOK, data=bodies[i], headers=auth()
                    ) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1

                lag = await open_loop(send, count, rate)
            check(statuses == {200: count}, f"webhook answers: {statuses}")
            fired_l2 = "SELECT count(*) FROM escalation_jobs WHERE level = 2 AND state = 'fired'"
            await wait_for(
                lambda: oncall.scalar(fired_l2) >= count,
                ESCALATE_AFTER + 120,
                f"{count} level-2 steps",
            )
            await receiver.wait_pages(2 * count, 120)
            figures = verify(oncall, receiver, count)
            figures["sender_worst_lag_ms"] = round(lag * 1000, 1)
            figures["peak_rss_mb"] = oncall.peak_rss_mb()
            return figures
        finally:
            oncall.stop()
            oncall.delete_keys()
            await receiver.stop()


def verify(oncall: Oncall, receiver: Receiver, count: int) -> dict[str, object]:
    """Check every step and page happened once; return the lateness figures."""
    rows = oncall.query(
        "SELECT due_at, fired_at, attempts FROM escalation_jobs WHERE level = 2 AND state = 'fired'"
    )
    check(len(rows) == count, f"{len(rows)} level-2 steps fired, expected {count}")
    check(all(attempts == 1 for _, _, attempts in rows), "a level-2 step ran twice")
    events = oncall.query(
        "SELECT incident_id, count(*) FROM incident_events "
        "WHERE type = 'escalation.level' GROUP BY incident_id"
    )
    check(
        len(events) == count and all(n == 2 for _, n in events),
        "an incident without exactly two escalation.level entries",
    )
    pages = receiver.pages_per()
    for level, user in ((1, "u1"), (2, "u2")):
        paged = [n for (who, _, lvl, _), n in pages.items() if lvl == level and who == user]
        check(len(paged) == count, f"{len(paged)} incidents paged at level {level}")
        check(all(n == 1 for n in paged), f"a level-{level} page was sent twice")
    check(
        oncall.job_count("escalation") == count,
        f"{oncall.job_count('escalation')} escalation timers in Redis, expected {count}",
    )
    lateness = [(_parse(fired) - _parse(due)).total_seconds() * 1000 for due, fired, _ in rows]
    check(min(lateness) >= 0, "a step fired before it was due")
    figures: dict[str, object] = {"incidents": count, "level2_fired": len(rows)}
    figures.update({f"level2_lateness_ms_{k}": v for k, v in percentiles(lateness).items()})
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument(
        "--capacity",
        default="300,450,600,800,1000",
        help="rates to try, ascending; empty to skip the search",
    )
    args = parser.parse_args()
    figures = await run(args.count, args.rate)
    figures["rate_per_s"] = args.rate
    checks = [
        f"{args.count} level-2 steps fired, each once",
        f"{args.count} incidents paged once at level 1 and once at level 2",
        f"{args.count} timers (the next step of each incident) in Redis",
    ]
    capacity = 0.0
    for rate in [float(r) for r in args.capacity.split(",") if r]:
        try:
            step = await run(int(rate * CAPACITY_SECONDS), rate)
        except CheckFailed as failure:
            print(f"  capacity {rate:.0f}/s: check failed: {failure}")
            break
        p99 = step["level2_lateness_ms_p99"]
        print(
            f"  capacity {rate:.0f}/s: level-2 lateness p99 {p99} ms, "
            f"max {step['level2_lateness_ms_max']} ms, "
            f"sender lag {step['sender_worst_lag_ms']} ms"
        )
        assert isinstance(p99, float)
        if p99 >= 1000:
            break
        capacity = rate
    if args.capacity:
        figures["capacity_incidents_per_s"] = capacity
        checks.append(f"capacity steps of {CAPACITY_SECONDS} s each passed the same checks")
    report("escalation", figures, checks)


if __name__ == "__main__":
    run_main(main)
