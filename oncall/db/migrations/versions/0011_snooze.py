"""An incident's own timers besides escalation: a snooze's end and an acknowledgement's
timeout. Each is a due time on the incident row, the truth the reconciler rebuilds the
Redis wake job from; NULL when nothing is pending.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("snoozed_until", Time))
        batch.add_column(sa.Column("ack_timeout_at", Time))
    op.create_index("ix_incidents_snoozed_until", "incidents", ["snoozed_until"])
    op.create_index("ix_incidents_ack_timeout_at", "incidents", ["ack_timeout_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_ack_timeout_at", "incidents")
    op.drop_index("ix_incidents_snoozed_until", "incidents")
    # SQLite drops a plain column in place: recreating the table would drop the old one,
    # and foreign keys cascade that drop to every alert and page of every incident.
    with op.batch_alter_table("incidents", recreate="never") as batch:
        batch.drop_column("ack_timeout_at")
        batch.drop_column("snoozed_until")
