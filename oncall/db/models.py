"""Tables, as SQLAlchemy Core: the database is the source of truth for everything but timers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


@functools.lru_cache(maxsize=1024)
def _sqlite_text(value: datetime) -> str:
    """Return an aware datetime as SQLite's stored text of its UTC instant.

    Cached: a transaction binds its one `now` in dozens of places and a group's alerts
    mostly share one start; equal instants give the same text whatever their zone."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; every time must be aware UTC")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    # On SQLite, the two conversions below replace SQLAlchemy's DATETIME text conversion
    # (several Python steps each way) with one C call, and a repeated value is converted
    # once. They keep SQLite's storage format exactly ("YYYY-MM-DD HH:MM:SS.ffffff",
    # compared as text in queries); tests/db/test_fastpath.py checks them against the
    # general path.
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime stored; every time must be aware UTC")
            return _sqlite_text(value)

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)

        return from_text


Json = JSON().with_variant(JSONB(), "postgresql")
# A JSON column whose Python None is SQL NULL (not the JSON value null): "none given".
NullableJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("integration", String(64), nullable=False),
    Column("dedup_key", Text, nullable=False),
    Column("status", String(16), nullable=False),  # triggered, acknowledged, resolved
    Column("title", String(255), nullable=False),
    Column("severity", String(32), nullable=False),
    Column("labels", Json, nullable=False),
    Column("annotations", Json, nullable=False),
    Column("external_url", Text, nullable=False, server_default=""),
    Column("alert_count", Integer, nullable=False, server_default="0"),
    Column("firing_count", Integer, nullable=False, server_default="0"),
    Column("truncated_alerts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(128)),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(128)),
    # Routing, decided once when the incident opens.
    Column("route", String(255)),
    Column("policy", String(64)),
    Column("notify_resolved", Boolean, nullable=False, server_default=true()),
    Column("urgency", String(8), nullable=False, server_default="high"),  # high, low
    # The escalation's next timer: the truth the reconciler rebuilds Redis from.
    # next_due_at is NULL when nothing is pending (acknowledged, resolved, exhausted).
    Column("next_level", Integer),
    Column("next_repeat", Integer),
    Column("next_due_at", UTCDateTime),
    # The incident's wake timers, each NULL when not pending: a snooze's end (the incident
    # is acknowledged until then) and an acknowledgement's timeout.
    Column("snoozed_until", UTCDateTime),
    Column("ack_timeout_at", UTCDateTime),
    # The key of the maintenance window that holds the incident's paging (NULL: none).
    Column("maintenance", String(255)),
)
# At most one open incident per group: a concurrent second insert fails and is retried.
Index(
    "uq_incidents_open_group",
    incidents.c.integration,
    incidents.c.dedup_key,
    unique=True,
    sqlite_where=text("status != 'resolved'"),
    postgresql_where=text("status != 'resolved'"),
)
Index("ix_incidents_status_id", incidents.c.status, incidents.c.id)
Index("ix_incidents_next_due_at", incidents.c.next_due_at)
Index("ix_incidents_snoozed_until", incidents.c.snoozed_until)
Index("ix_incidents_ack_timeout_at", incidents.c.ack_timeout_at)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "incident_id",
        Integer,
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("integration", String(64), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    # 0 for an occurrence's first row; each re-fire after its incident closed adds the next.
    Column("generation", Integer, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # firing, resolved
    Column("labels", Json, nullable=False),
    Column("annotations", Json, nullable=False),
    Column("ends_at", UTCDateTime),
    Column("generator_url", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Its sender's context (oncall.ingest.context), NULL when it has none: custom_details
    # (any JSON), links [{href, text}] and images [{src, href, alt}], as Events v2 sends
    # them. Rows from before them may have them as JSON text in their annotations.
    Column("custom_details", NullableJson),
    Column("links", NullableJson),
    Column("images", NullableJson),
    # Each generation of an occurrence belongs to exactly one incident, forever; two
    # concurrent re-fires of one occurrence collide here and the loser is retried.
    UniqueConstraint(
        "integration", "fingerprint", "starts_at", "generation", name="uq_alerts_occurrence"
    ),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("detail", Json, nullable=False),
)
Index("ix_incident_events_incident_id", incident_events.c.incident_id, incident_events.c.id)

escalation_jobs = Table(
    "escalation_jobs",
    metadata,
    Column("id", String(96), primary_key=True),  # incident:{id}:level:{l}:repeat:{r}
    Column(
        "incident_id",
        Integer,
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("level", Integer, nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # scheduled, fired, cancelled, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("fired_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_escalation_jobs_state", escalation_jobs.c.state)

# The outbox: one row per page (or resolved message) per contact, written in the transaction
# that decided it; delivery jobs only carry the row id.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "incident_id",
        Integer,
        ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),  # trigger, resolved
    Column("level", Integer, nullable=False),  # 0 for resolved messages
    Column("repeat", Integer, nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("contact_index", Integer, nullable=False),
    Column("contact_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # pending, sent, failed, cancelled
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text),
    Column("sent_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("contact_name", String(64)),  # the contact's stable name (NULL: older rows)
    # No unique key per level and contact: a level paged again by hand writes new pages
    # (migration 0010); a step's claim is what keeps it from writing its pages twice.
)
Index("ix_notifications_status_next", notifications.c.status, notifications.c.next_attempt_at)

notification_attempts = Table(
    "notification_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "notification_id",
        Integer,
        ForeignKey("notifications.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered, retry, permanent
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
)

# Small key-value facts the service keeps about itself (a generated link-signing key).
meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

schedule_overrides = Table(
    "schedule_overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule", String(64), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("start_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index(
    "ix_schedule_overrides_schedule_end", schedule_overrides.c.schedule, schedule_overrides.c.end_at
)

# A heartbeat's deadline is a timer like an escalation step: this row is the truth.
heartbeats = Table(
    "heartbeats",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_ping_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),  # NULL: not armed (never pinged, or already missed)
    Column("missed", Integer, nullable=False, server_default="0"),  # deadlines missed so far
)

# One calendar feed per user: the URL carries a random secret, the row only its SHA-256, so
# the database cannot be read back into working feed URLs. Rotating replaces the row;
# revoking deletes it.
calendar_feeds = Table(
    "calendar_feeds",
    metadata,
    Column("user_name", String(64), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),  # hex
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
)

# Who changed what: override changes and every admin action, written in the transaction of
# the change itself, so a change is never without its record.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),  # e.g. override.delete
    Column("subject", String(255), nullable=False),  # e.g. schedule:primary/override:3
    Column("detail", Json, nullable=False),
)

# Maintenance windows added through the API (the directory file's are in the directory):
# `every` holds a weekly window's days, times and zone, else start_at and end_at are set.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("start_at", UTCDateTime),
    Column("end_at", UTCDateTime),
    Column("every", Json),
    Column("match", Json, nullable=False),
    Column("integrations", Json, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One password per user who may log in to the web UI: only its argon2 hash. `changed_at`
# ends every session that began before it (a new password logs out everywhere).
passwords = Table(
    "passwords",
    metadata,
    Column("user_name", String(64), primary_key=True),
    Column("hash", String(255), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)

# Sessions ended by logging out, until their cookies would have expired anyway: the cookie
# is the session (encrypted, kept by the browser), so a copy of it must be refused here.
ended_sessions = Table(
    "ended_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_name", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Change events (Events v2 `POST /v2/change/enqueue`) of each integration, shown with the
# incidents it opens soon after; kept a week, at most CHANGES_KEPT per integration
# (oncall.ingest.changes).
change_events = Table(
    "change_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("integration", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("source", Text, nullable=False, server_default=""),
    Column("timestamp", UTCDateTime),  # the sender's, when it gave one
    Column("custom_details", NullableJson),
    Column("links", NullableJson),
    Column("images", NullableJson),
    Column("received_at", UTCDateTime, nullable=False),
)
Index(
    "ix_change_events_integration_received_at",
    change_events.c.integration,
    change_events.c.received_at,
)

# Who runs the timers (oncall.cluster): one row, `scheduler`, the lease its holder renews.
# Times are the database's own clock, so instances' clocks never have to agree.
leadership = Table(
    "leadership",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(160)),  # the holding process: `<instance>#<random hex>`
    Column("holder_name", String(128)),  # its [cluster] instance, for people
    Column("term", Integer, nullable=False, server_default="0"),  # +1 at every take
    Column("since", UTCDateTime),  # when the holder took it
    Column("expires_at", UTCDateTime),
)
