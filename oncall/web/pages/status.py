"""The /status page, for everybody logged in: the /health checks in words, the failed pages
(dead letters) with their last error, and incidents opened per day over the last 30 days
with the median times to acknowledge and to resolve, as a chart drawn on the server.

The "Configuration" section lists the directory's lint warnings (`oncall.directory.lint`),
counting the stored overrides: a gap an override fills is not warned about here (the log and
`check-config` read the file alone).

The checks are /health's own (its shared, single-flight run). As /health shows the checks'
error texts (which can name hosts) only to admins and the metrics token, this page words
every check for everybody and adds the error texts for admins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from oncall.directory.lint import LOOKAHEAD, Warning, lint, used_schedules
from oncall.directory.model import Directory, User
from oncall.incidents import stats
from oncall.runtime import Runtime
from oncall.schedules.overrides import Override
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME
from oncall.web.pages.base import local_time, page, render
from oncall.web.routes.ops import SHARED

DEAD_LETTERS = 50  # the newest failed pages shown
NAMES = {"database": "Database", "redis": "Redis (timers)", "scheduler": "Scheduler"}


@dataclass
class CheckWords:
    """One health check as the page says it."""

    name: str
    ok: bool
    summary: str
    facts: list[str] = field(default_factory=list)
    error: str | None = None  # the check's error text (admins only)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_words(name: str, check: dict[str, Any], zone: str, admin: bool) -> CheckWords:
    """Return a /health check (`run_checks`' result for `name`) in words; its error text
    only for an admin."""
    ok = check.get("status") == "ok"
    words = CheckWords(NAMES.get(name, name), ok, "Working" if ok else "Failing")
    if name == "database":
        if ok:
            words.summary = f"Answering ({check.get('latency_ms', 0)} ms)"
        else:
            words.summary = "Not answering"
    elif name == "redis":
        if ok:
            words.summary = "Answering"
        else:
            words.summary = (
                f"Not answering for {check.get('for_s', 0)} s: timers are fired by the "
                "database sweep until it answers again"
            )
    elif name == "scheduler":
        words.summary = "Running" if check.get("running") else "Not running"
        words.facts = _scheduler_facts(check, zone)
        if not ok and check.get("running"):
            words.summary = "Running, with problems"
    if not ok and admin:
        words.error = str(check.get("error") or "")
    return words


def _scheduler_facts(check: dict[str, Any], zone: str) -> list[str]:
    facts = []
    last = check.get("last_reconcile")
    if last:
        when = local_time(datetime.fromisoformat(last), zone)
        facts.append(f"Last reconcile at {when}")
    else:
        facts.append("No reconcile has succeeded yet")
    for key, one, many in (
        ("overdue_steps", "escalation step overdue", "escalation steps overdue"),
        ("failed_steps", "escalation step failed", "escalation steps failed"),
        ("overdue_notifications", "page overdue", "pages overdue"),
        ("failed_notifications", "failed page (dead letter)", "failed pages (dead letters)"),
    ):
        if key in check:
            facts.append(_count(int(check[key]), one, many))
    pending = check.get("pending")
    if isinstance(pending, dict):
        facts.append(_count(sum(pending.values()), "timer pending", "timers pending"))
    if "counts_error" in check or ("overdue_steps" not in check and "error" in check):
        facts.append("The queues could not be counted in time")
    if check.get("sweeping"):
        facts.append("The database sweep fires what falls due while Redis is away")
    if check.get("foreign_jobs"):
        facts.append("Jobs of another deployment fired here: two deployments share a key prefix")
    return facts


@dataclass(frozen=True)
class DeadLetter:
    incident_id: int
    kind: str
    user: str
    contact: str
    attempts: int
    error: str
    at: datetime


def dead_letter(row: Any, attempts: list[Any]) -> DeadLetter:
    """Return a failed notification as the page lists it: its last error and when."""
    last = attempts[-1] if attempts else None
    return DeadLetter(
        incident_id=row.incident_id,
        kind=row.kind,
        user=row.user_name,
        contact=row.contact_name or row.contact_type,
        attempts=row.attempts,
        error=row.last_error or (last.error if last is not None else None) or "no error recorded",
        at=last.at if last is not None else row.updated_at,
    )


async def configuration_warnings(
    runtime: Runtime, directory: Directory, now: datetime
) -> list[Warning]:
    """Return the directory's lint warnings at `now`, counting the stored overrides of the
    schedules the policies notify."""
    overrides: dict[str, Sequence[Override]] = {}
    for name in sorted(used_schedules(directory) & set(directory.schedules)):
        timeline = await runtime.schedules.timeline(name, now, now + LOOKAHEAD)
        overrides[name] = timeline.overrides
    return lint(directory, now, overrides=overrides)


@page
async def status_page(request: web.Request, user: User) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    now = request.app[CLOCK]()
    zone = user.time_zone
    checks = await request.app[SHARED].checks()
    words = [check_words(name, check, zone, user.is_admin) for name, check in checks.items()]
    failed = await runtime.notifier.list_notifications(["failed"], None, DEAD_LETTERS)
    rows = await runtime.incidents.opened_since(stats.window_start(now, zone))
    summary = stats.summarize(rows, now, zone)
    chart = stats.chart(summary)
    warnings = await configuration_warnings(runtime, request.app[DIRECTORY].current, now)
    context = {
        "checks": words,
        "healthy": all(w.ok for w in words),
        "admin": user.is_admin,
        "dead_letters": [dead_letter(row, attempts) for row, attempts in failed],
        "dead_letter_limit": DEAD_LETTERS,
        "summary": summary,
        "chart": chart,
        "bars": [(bar, f"{bar.day:%a} {bar.day.day} {bar.day:%b}") for bar in chart.bars],
        "median_ack": stats.duration_words(summary.median_ack),
        "median_resolve": stats.duration_words(summary.median_resolve),
        "days": stats.DAYS,
        "warnings": warnings,
        "lint_days": LOOKAHEAD.days,
    }
    return await render(request, "status.html", context)


def add_routes(app: web.Application) -> None:
    """Add this module's pages to `app`."""
    app.router.add_get("/status", status_page)
