"""Escalation: routing on the incident, the next-step pointer, and the escalation jobs table.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("route", sa.String(255)))
        batch.add_column(sa.Column("policy", sa.String(64)))
        batch.add_column(sa.Column("next_level", sa.Integer))
        batch.add_column(sa.Column("next_repeat", sa.Integer))
        batch.add_column(sa.Column("next_due_at", Time))
    op.create_index("ix_incidents_next_due_at", "incidents", ["next_due_at"])
    op.create_table(
        "escalation_jobs",
        sa.Column("id", sa.String(96), nullable=False),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("due_at", Time, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("fired_at", Time),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_escalation_jobs"),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            ondelete="CASCADE",
            name="fk_escalation_jobs_incident_id_incidents",
        ),
    )
    op.create_index("ix_escalation_jobs_incident_id", "escalation_jobs", ["incident_id"])
    op.create_index("ix_escalation_jobs_state", "escalation_jobs", ["state"])


def downgrade() -> None:
    # In place on SQLite (its own DROP COLUMN), without copying the whole table.
    op.drop_table("escalation_jobs")
    op.drop_index("ix_incidents_next_due_at", "incidents")
    with op.batch_alter_table("incidents", recreate="never") as batch:
        for column in ("next_due_at", "next_repeat", "next_level", "policy", "route"):
            batch.drop_column(column)
