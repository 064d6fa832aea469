"""JSON shapes of what the API returns: incidents, alerts, timeline entries, pages,
overrides, shifts."""

from __future__ import annotations

from typing import Any

from oncall.clock import isoformat
from oncall.ingest.context import stored_context
from oncall.schedules.rotation import Schedule, Shift
from oncall.schedules.service import OnCall


def incident_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "title": row.title,
        "severity": row.severity,
        "labels": row.labels,
        "annotations": row.annotations,
        "integration": row.integration,
        "dedup_key": row.dedup_key,
        "external_url": row.external_url,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "acknowledged_at": isoformat(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": isoformat(row.resolved_at),
        "resolved_by": row.resolved_by,
        "alert_count": row.alert_count,
        "firing_count": row.firing_count,
        "truncated_alerts": row.truncated_alerts,
        "route": row.route,
        "policy": row.policy,
        "urgency": row.urgency,
        # Acknowledged until then, then triggered again; an acknowledgement's timeout.
        "snoozed_until": isoformat(row.snoozed_until),
        "ack_timeout_at": isoformat(row.ack_timeout_at),
        # A maintenance window holds its paging (`maintenance`: the window's key).
        "in_maintenance": row.maintenance is not None,
        "maintenance": row.maintenance,
        "next_step": None
        if row.next_due_at is None
        else {
            "level": row.next_level,
            "repeat": row.next_repeat,
            "due_at": isoformat(row.next_due_at),
        },
    }


def _context_json(row: Any) -> dict[str, Any]:
    """The sender's context of an alert or a change event, structured: custom_details
    (any JSON, null when none), links [{href, text}] and images [{src, href, alt}]."""
    context = stored_context(row.custom_details, row.links, row.images)
    return {
        "custom_details": context.custom_details,
        "links": list(context.links),
        "images": list(context.images),
    }


def alert_json(row: Any) -> dict[str, Any]:
    return {
        "fingerprint": row.fingerprint,
        "status": row.status,
        "labels": row.labels,
        "annotations": row.annotations,
        "starts_at": isoformat(row.starts_at),
        "ends_at": isoformat(row.ends_at),
        "generator_url": row.generator_url,
        **_context_json(row),
    }


def change_json(row: Any) -> dict[str, Any]:
    """A change event as an incident shows it (`timestamp`: the sender's, null if none)."""
    return {
        "summary": row.summary,
        "source": row.source,
        "timestamp": isoformat(row.timestamp),
        "received_at": isoformat(row.received_at),
        **_context_json(row),
    }


def event_json(row: Any) -> dict[str, Any]:
    return {"at": isoformat(row.at), "type": row.type, "actor": row.actor, "detail": row.detail}


def notification_json(row: Any, attempts: list[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "incident_id": row.incident_id,
        "kind": row.kind,
        "level": row.level,
        "repeat": row.repeat,
        "user": row.user_name,
        "contact_index": row.contact_index,
        "contact_type": row.contact_type,
        "contact": row.contact_name,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": isoformat(row.next_attempt_at),
        "last_error": row.last_error,
        "sent_at": isoformat(row.sent_at),
        "created_at": isoformat(row.created_at),
        "attempt_log": [
            {
                "at": isoformat(a.at),
                "outcome": a.outcome,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ],
    }


def override_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "schedule": row.schedule,
        "user": row.user_name,
        "start": isoformat(row.start_at),
        "end": isoformat(row.end_at),
        "created_by": row.created_by,
        "created_at": isoformat(row.created_at),
    }


def shift_json(shift: Shift, schedule: Schedule) -> dict[str, Any]:
    zone = schedule.zone
    return {
        "user": shift.user,
        "start": isoformat(shift.start),
        "end": isoformat(shift.end),
        "start_local": shift.start.astimezone(zone).isoformat(),
        "end_local": shift.end.astimezone(zone).isoformat(),
    }


def oncall_json(oncall: OnCall) -> dict[str, Any]:
    return {
        "at": isoformat(oncall.at),
        "schedules": oncall.schedules,
        "policies": {
            name: [
                {"level": level, "targets": targets, "on_call": users}
                for level, targets, users in levels
            ]
            for name, levels in oncall.policies.items()
        },
    }
