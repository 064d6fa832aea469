"""Tables, as SQLAlchemy Core: the database is the source of truth for everything but timers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


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
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")

incidents = Table(
    "incidents", metadata,
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
    # The escalation's next timer: the truth the reconciler rebuilds Redis from.
    # next_due_at is NULL when nothing is pending (acknowledged, resolved, exhausted).
    Column("next_level", Integer),
    Column("next_repeat", Integer),
    Column("next_due_at", UTCDateTime),
)
# At most one open incident per group: a concurrent second insert fails and is retried.
Index("uq_incidents_open_group", incidents.c.integration, incidents.c.dedup_key, unique=True,
      sqlite_where=text("status != 'resolved'"), postgresql_where=text("status != 'resolved'"))
Index("ix_incidents_status_id", incidents.c.status, incidents.c.id)
Index("ix_incidents_next_due_at", incidents.c.next_due_at)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("integration", String(64), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # firing, resolved
    Column("labels", Json, nullable=False),
    Column("annotations", Json, nullable=False),
    Column("ends_at", UTCDateTime),
    Column("generator_url", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # An occurrence belongs to exactly one incident, forever.
    UniqueConstraint("integration", "fingerprint", "starts_at", name="uq_alerts_occurrence"),
)

incident_events = Table(
    "incident_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"),
           nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("detail", Json, nullable=False),
)
Index("ix_incident_events_incident_id", incident_events.c.incident_id, incident_events.c.id)

escalation_jobs = Table(
    "escalation_jobs", metadata,
    Column("id", String(96), primary_key=True),  # incident:{id}:level:{l}:repeat:{r}
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"),
           nullable=False, index=True),
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
