"""Storm: one Alertmanager group of 5,000 alerts (a single request of a few MB), sent 10
times, as Alertmanager re-sends a group every group_interval. Reports each request's latency.

Checks: 1 incident, 5,000 alerts, one page per target per level, one timer in Redis.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import aiohttp

from harness import (
    WEBHOOK,
    Oncall,
    Receiver,
    alert,
    auth,
    check,
    directory_yaml,
    percentiles,
    report,
    run_main,
    webhook,
)

ALERTS = 5000
SENDS = 10


async def main() -> None:
    body = webhook("Storm", [alert("Storm", f"host-{i:05d}") for i in range(ALERTS)])
    receiver = Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        oncall = Oncall(Path(tmp), directory_yaml(receiver.url, ("10m", "10m")))
        await oncall.start()
        latencies = []
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(SENDS):
                    started = time.perf_counter()
                    async with session.post(
                        oncall.url + WEBHOOK, data=body, headers=auth()
                    ) as response:
                        answer = await response.json()
                        check(response.status == 200, f"answered {response.status}: {answer}")
                    latencies.append((time.perf_counter() - started) * 1000)
            await receiver.wait_pages(1, 60)
            check(
                oncall.query("SELECT count(*), sum(alert_count) FROM incidents") == [(1, ALERTS)],
                "not exactly 1 incident of 5,000 alerts",
            )
            check(
                oncall.scalar("SELECT count(*) FROM alerts") == ALERTS,
                "not exactly 5,000 alert rows",
            )
            check(
                oncall.scalar("SELECT count(*) FROM notifications") == 1,
                "not exactly one page written",
            )
            check(sum(receiver.pages_per().values()) == 1, "not exactly one page received")
            check(oncall.job_count("escalation") == 1, "not exactly one timer (level 2)")
            figures: dict[str, object] = {"alerts_per_request": ALERTS, "request_bytes": len(body)}
            figures.update({f"latency_ms_{k}": v for k, v in percentiles(latencies).items()})
            figures["first_request_ms"] = round(latencies[0], 1)
            figures["peak_rss_mb"] = oncall.peak_rss_mb()
        finally:
            oncall.stop()
            oncall.delete_keys()
            await receiver.stop()
    report(
        "storm",
        figures,
        [f"1 incident, {ALERTS} alerts after {SENDS} sends", "1 page (level 1), 1 timer (level 2)"],
    )


if __name__ == "__main__":
    run_main(main)
