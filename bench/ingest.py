"""Ingest: 5,000 distinct alerts as Alertmanager webhooks of 10 alerts (one group, so one
incident, per request), 8 requests in flight, in three phases: all firing (500 new
incidents), the same payloads again (the dedup path), all resolved.

Also drives a bare aiohttp hello server with the same client and payloads: the HTTP ceiling
of this machine, measured in the same run, so each figure is also given as a fraction of it.
Checks afterwards: 500 incidents and 5,000 alerts, all resolved; no page sent twice; no
escalation timer left in Redis.
"""

from __future__ import annotations

import subprocess
import sys
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
    closed_loop,
    directory_yaml,
    free_port,
    percentiles,
    report,
    run_main,
    wait_for,
    webhook,
)

GROUPS = 500
PER_GROUP = 10
IN_FLIGHT = 8
CEILING_REQUESTS = 5000


def payloads(status: str) -> list[bytes]:
    return [webhook(f"Bench{g:04d}", [alert(f"Bench{g:04d}", f"host-{g:04d}-{i}", status)
                                      for i in range(PER_GROUP)])
            for g in range(GROUPS)]


async def http_ceiling(session: aiohttp.ClientSession, bodies: list[bytes]) -> float:
    """Return the hello server's requests per second with the same client and bodies."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "hello.py"),
                             str(port)])
    try:
        url = f"http://127.0.0.1:{port}/hook"

        def answering() -> bool:
            try:
                import socket
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        await wait_for(answering, 15, "the hello server", interval=0.05)
        await closed_loop(session, url, bodies[:500], IN_FLIGHT, auth())  # warm-up
        repeated = (bodies * (CEILING_REQUESTS // len(bodies) + 1))[:CEILING_REQUESTS]
        elapsed, _ = await closed_loop(session, url, repeated, IN_FLIGHT, auth())
        return CEILING_REQUESTS / elapsed
    finally:
        proc.terminate()
        proc.wait()


async def main() -> None:
    firing, resolved = payloads("firing"), payloads("resolved")
    receiver = Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        oncall = Oncall(Path(tmp), directory_yaml(receiver.url, ("10m",)))
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector) as session:
            ceiling = await http_ceiling(session, firing)
            await oncall.start()
            figures: dict[str, object] = {
                "http_ceiling_requests_per_s": round(ceiling),
                "http_ceiling_alerts_per_s": round(ceiling * PER_GROUP)}
            try:
                for phase, bodies in (("new", firing), ("duplicate", firing),
                                      ("resolve", resolved)):
                    elapsed, latencies = await closed_loop(session, oncall.url + WEBHOOK,
                                                           bodies, IN_FLIGHT, auth())
                    rate = GROUPS * PER_GROUP / elapsed
                    figures[f"{phase}_alerts_per_s"] = round(rate)
                    figures[f"{phase}_fraction_of_ceiling"] = round(
                        rate / (ceiling * PER_GROUP), 3)
                    for name, value in percentiles(latencies).items():
                        figures[f"{phase}_latency_ms_{name}"] = value
                    if phase == "new":  # every incident pages level 1 before the next phase
                        figures["new_pages_settled_s"] = round(
                            await receiver.wait_pages(GROUPS, 60), 2)
                checks = await verify(oncall, receiver)
                figures["peak_rss_mb"] = oncall.peak_rss_mb()
            finally:
                oncall.stop()
                oncall.delete_keys()
                await receiver.stop()
    report("ingest", figures, checks)


async def verify(oncall: Oncall, receiver: Receiver) -> list[str]:
    """Check the end state; return what was checked. Raises CheckFailed."""
    started = time.perf_counter()
    await wait_for(lambda: oncall.job_count("escalation") == 0, 60,
                   "every escalation timer to leave Redis")
    await wait_for(lambda: oncall.scalar(
        "SELECT count(*) FROM notifications WHERE status = 'pending'") == 0, 60,
        "every notification to settle")
    settled = time.perf_counter() - started
    counts = oncall.query("SELECT status, count(*) FROM incidents GROUP BY status")
    check(counts == [("resolved", GROUPS)], f"incidents by status: {counts}")
    alerts = oncall.query("SELECT status, count(*) FROM alerts GROUP BY status")
    check(alerts == [("resolved", GROUPS * PER_GROUP)], f"alerts by status: {alerts}")
    pages = receiver.pages_per()
    twice = {key: n for key, n in pages.items() if n > 1}
    check(not twice, f"pages sent more than once: {list(twice.items())[:5]}")
    incident_ids = {incident for _, incident, _, _ in pages}
    check(incident_ids == set(range(1, GROUPS + 1)), "an incident without its level-1 page")
    resolved = receiver.pages_per("incident.resolved")
    check(all(n == 1 for n in resolved.values()), "a resolved message sent twice")
    sent = oncall.scalar("SELECT count(*) FROM notifications WHERE kind = 'trigger' "
                         "AND status = 'sent'")
    check(sent == len(pages), f"{sent} pages recorded sent, {len(pages)} received")
    return [f"{GROUPS} incidents, all resolved",
            f"{GROUPS * PER_GROUP} alerts, all resolved",
            f"{len(pages)} level-1 pages (one per incident), none twice",
            f"no escalation timer left in Redis ({settled:.1f} s to settle)"]


if __name__ == "__main__":
    run_main(main)
