"""The lease of the instance that runs the timers, for several instances on one database.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "leadership",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(160)),
        sa.Column("holder_name", sa.String(128)),
        sa.Column("term", sa.Integer, nullable=False, server_default="0"),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("name", name="pk_leadership"),
    )
    op.bulk_insert(table, [{"name": "scheduler", "term": 0}])


def downgrade() -> None:
    op.drop_table("leadership")
