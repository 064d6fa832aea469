"""Maintenance windows: the API's windows in a table of their own, and on each incident the
key of the window holding its paging (NULL when none does).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Time = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("start_at", Time),
        sa.Column("end_at", Time),
        sa.Column("every", Json),
        sa.Column("match", Json, nullable=False),
        sa.Column("integrations", Json, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_windows"),
    )
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("maintenance", sa.String(255)))


def downgrade() -> None:
    # An incident held by a window when this runs pages again only when a person acts on it:
    # the older schema has no way to say it is held. SQLite drops the plain column in
    # place: recreating the table would drop the old one, and foreign keys cascade that
    # drop to every alert and page of every incident.
    with op.batch_alter_table("incidents", recreate="never") as batch:
        batch.drop_column("maintenance")
    op.drop_table("maintenance_windows")
