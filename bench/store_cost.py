"""The database side of ingest alone: CPU time and SQL statements per incident.

Runs the store functions the webhook runs (no HTTP, no Redis, one thread) on a SQLite file,
for 2,000 incidents of 10 alerts: open (level 1 paged, its page claimed), the page recorded
as delivered, the same delivery again, all resolved (the resolved message queued), that
message recorded. CPU is `time.thread_time`; statements are counted by SQLite's trace hook,
savepoints included. Both are far steadier than rates on a shared machine, so this is the
figure to compare when changing the store.

`python bench/store_cost.py [--count N]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import NO_STORM, alert, check, report, webhook
from oncall.db.engine import make_engine, sqlite_engine, sqlite_url
from oncall.db.migrate import upgrade
from oncall.directory.parse import parse_directory
from oncall.ingest import store
from oncall.ingest.alertmanager import parse_webhook
from oncall.notify import store as store_notify
from oncall.notify.outbox import Attempt
from oncall.notify.retry import DELIVERED
from oncall.settings import DatabaseSettings
from tests.support.wiring import services

DIRECTORY = """
integrations:
  - {name: prometheus, type: alertmanager, token: "bench-store-cost-token-0123456789abcdefgh"}
users:
  - {name: u1, contacts: [{type: webhook, url: "http://127.0.0.1:9/u1"}]}
policies:
  - {name: bench, repeat: 0, levels: [{notify: ["user:u1"], escalate_after: 10m}]}
routes:
  - {policy: bench}
"""
WARM_UP = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    count = parser.parse_args().count
    directory = parse_directory(DIRECTORY, {})
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(DatabaseSettings(f"sqlite+aiosqlite:///{tmp}/cost.db", ""))
        asyncio.run(upgrade(engine))
        writer = sqlite_engine(sqlite_url(engine))
        with writer.connect() as conn:
            statements = [0]
            conn.connection.driver_connection.set_trace_callback(  # type: ignore[union-attr]
                lambda _sql: statements.__setitem__(0, statements[0] + 1)
            )
            figures = run(conn, directory, count, statements)
        writer.dispose()
    report("store_cost", figures, [f"{count} incidents opened, paged and resolved"])


def run(conn: Any, directory: Any, count: int, statements: list[int]) -> dict[str, Any]:
    start = datetime(2026, 11, 28, tzinfo=UTC)
    # What the store functions call in their transaction. Thousands of incidents a
    # second: the storm guard checks each page (its cost is counted) and folds none.
    runtime = services(directory, ONCALL_PAGING_STORM_THRESHOLD=NO_STORM)
    ports = (runtime.incidents, runtime.escalation)

    def at(n: int, phase: int) -> datetime:
        """Return the clock of unit `n` of a phase: each request reads its own, as in the
        service (one `now` shared by every unit would flatter per-value memos)."""
        return start + timedelta(seconds=phase * 3600, milliseconds=n)

    def group(n: int, status: str) -> Any:
        body = webhook(
            f"Cost{n:05d}", [alert(f"Cost{n:05d}", f"host-{n}-{i}", status) for i in range(10)]
        )
        return parse_webhook(json.loads(body))

    def unit(work: Callable[..., Any], *args: Any) -> Any:
        with conn.begin():
            return work(conn, *args)

    def record(result: Any, now: datetime) -> None:
        [claimed] = result.followups.pages
        attempt = Attempt(claimed.notification, claimed.attempt, DELIVERED, None, 5, None)
        unit(store_notify.record_attempts, [attempt], timedelta(seconds=2), now)

    phases: dict[str, Callable[[int], Any]] = {
        "open": lambda n: opened.append(
            unit(store.ingest_group, "prometheus", firing[n], directory, at(n, 0), *ports)
        ),
        "page_recorded": lambda n: record(opened[n], at(n, 1)),
        "duplicate": lambda n: unit(
            store.ingest_group, "prometheus", firing[n], directory, at(n, 2), *ports
        ),
        "resolve": lambda n: resolved.append(
            unit(store.ingest_group, "prometheus", resolving[n], directory, at(n, 3), *ports)
        ),
        "resolved_message_recorded": lambda n: record(resolved[n], at(n, 4)),
    }
    total = WARM_UP + count
    firing = [group(n, "firing") for n in range(total)]
    resolving = [group(n, "resolved") for n in range(total)]
    opened: list[Any] = []
    resolved: list[Any] = []
    figures: dict[str, Any] = {"incidents": count}
    for name, step in phases.items():
        for n in range(WARM_UP):
            step(n)
        statements[0] = 0
        started = time.thread_time()
        for n in range(WARM_UP, total):
            step(n)
        cpu = time.thread_time() - started
        figures[f"{name}_cpu_us"] = round(cpu * 1e6 / count)
        figures[f"{name}_statements"] = round(statements[0] / count, 2)
    check(all(len(r.opened) == 1 for r in opened), "every group opened one incident")
    check(all(len(r.resolved) == 1 for r in resolved), "every incident resolved")
    rows = conn.exec_driver_sql("SELECT count(*), sum(status = 'resolved') FROM incidents").one()
    check(tuple(rows) == (total, total), f"{total} incidents, all resolved: {tuple(rows)}")
    sent = conn.exec_driver_sql(
        "SELECT count(*) FROM notifications WHERE status = 'sent'"
    ).scalar_one()
    check(sent == 2 * total, f"{2 * total} messages sent (page and resolved): {sent}")
    return figures


if __name__ == "__main__":
    main()
