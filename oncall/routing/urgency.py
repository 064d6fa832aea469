"""An incident's urgency, decided once as it opens from its route and severity. Pure."""

from __future__ import annotations

from oncall.directory.model import BY_SEVERITY, HIGH, LOW

# Severities that can wait: Alertmanager's `severity` label, Events v2's `payload.severity`.
LOW_SEVERITIES = frozenset({"warning", "info"})


def incident_urgency(route_urgency: str, severity: str) -> str:
    """Return `high` or `low` for an incident opened by a route of `route_urgency`.

    `by_severity` makes warning and info low; critical, error and anything else (a
    missing or unknown severity) high, so an alert nobody classified still wakes someone.
    """
    if route_urgency != BY_SEVERITY:
        return route_urgency
    return LOW if severity.strip().lower() in LOW_SEVERITIES else HIGH
