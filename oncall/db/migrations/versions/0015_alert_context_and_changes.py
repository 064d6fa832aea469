"""Alerts keep their sender's context structured (custom_details, links, images: JSON,
NULL when none), and change events (Events v2 `/v2/change/enqueue`) get a table.

Alerts stored before keep an Events v2 trigger's context as JSON text in their
annotations, as they were written; the pages still read it there.

Revision ID: 0015
Revises: 0014
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
CONTEXT = ("custom_details", "links", "images")


def upgrade() -> None:
    with op.batch_alter_table("alerts", recreate="never") as batch:
        for name in CONTEXT:
            batch.add_column(sa.Column(name, Json))
    op.create_table(
        "change_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("timestamp", Time),
        sa.Column("custom_details", Json),
        sa.Column("links", Json),
        sa.Column("images", Json),
        sa.Column("received_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_events"),
    )
    op.create_index(
        "ix_change_events_integration_received_at",
        "change_events",
        ["integration", "received_at"],
    )


def _context_into_annotations() -> None:
    """Write each alert's context back into its annotations as the older code wrote and
    reads it: JSON text, cut at 8192 characters."""
    alerts = sa.table(
        "alerts",
        sa.column("id", sa.Integer),
        sa.column("annotations", sa.JSON().with_variant(JSONB(), "postgresql")),
        *(sa.column(name, Json) for name in CONTEXT),
    )
    conn = op.get_bind()
    found = conn.execute(
        sa.select(alerts).where(sa.or_(*(alerts.c[name].is_not(None) for name in CONTEXT)))
    ).all()
    for row in found:
        annotations = dict(row.annotations or {})
        if row.custom_details is not None:
            annotations["custom_details"] = json.dumps(row.custom_details, sort_keys=True)[:8192]
        for name in ("links", "images"):
            if row._mapping[name]:
                annotations[name] = json.dumps(row._mapping[name])[:8192]
        conn.execute(sa.update(alerts).where(alerts.c.id == row.id).values(annotations=annotations))


def downgrade() -> None:
    # The older schema keeps an alert's context in its annotations: it goes back there.
    # SQLite drops the plain columns in place: recreating the table would drop the old
    # one, and foreign keys cascade that drop to every alert and page.
    _context_into_annotations()
    op.drop_index("ix_change_events_integration_received_at", table_name="change_events")
    op.drop_table("change_events")
    with op.batch_alter_table("alerts", recreate="never") as batch:
        for name in reversed(CONTEXT):
            batch.drop_column(name)
