"""Watching the watcher: whether `[monitoring] ping_url` is pinged, decided from the checks
of /health. Pure.

A dead-man's switch (healthchecks.io, Dead Man's Snitch, an ntfy topic) pages someone when
the pings stop, so a ping says "this service can page": its database answers, some
instance leads (this one or another: every instance of a cluster pings while one does),
and its scheduler check passes (running, reconciling, no escalation step overdue by more than
OVERDUE_AFTER, 30 s, nor failed, no notification overdue). Redis is not required: while it
is down the database sweep fires what falls due, and the scheduler check fails once that
stops working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# The checks of /health (oncall.web.routes.ops.run_checks) a ping needs to pass.
REQUIRED_CHECKS = ("database", "scheduler", "cluster")


@dataclass(frozen=True)
class PingDecision:
    ping: bool
    reason: str = ""  # why not: the failing checks and their errors


def should_ping(checks: Mapping[str, Mapping[str, Any]]) -> PingDecision:
    """Return whether this tick pings: when every required check is present and "ok"."""
    failing = []
    for name in REQUIRED_CHECKS:
        check = checks.get(name)
        if check is None:
            failing.append(f"{name}: not checked")
        elif check.get("status") != "ok":
            failing.append(f"{name}: {check.get('error') or check.get('status') or 'failed'}")
    if failing:
        return PingDecision(False, "; ".join(failing))
    return PingDecision(True)


def url_host(url: str) -> str:
    """Return the host (and port) of `url`, the part of a ping URL that may be logged: its
    path and query are the switch's secret (healthchecks.io's UUID, an ntfy topic), and so
    is a user part."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host
