"""Web UI passwords: one argon2 hash per user, and when it last changed.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passwords",
        sa.Column("user_name", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_name", name="pk_passwords"),
    )


def downgrade() -> None:
    op.drop_table("passwords")
