"""An incident's urgency: high escalates through every level, low pages level 1 only.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Incidents opened before urgencies existed escalated through every level: high.
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("urgency", sa.String(8), nullable=False, server_default="high"))


def downgrade() -> None:
    # In place on SQLite (its own DROP COLUMN), without copying the whole table.
    with op.batch_alter_table("incidents", recreate="never") as batch:
        batch.drop_column("urgency")
