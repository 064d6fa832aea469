"""Pages point at contacts by a stable name: a contact removed or moved in the directory
while its page retries no longer sends that page to whichever contact took its place.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before keep a NULL name and are found by their position, as before.
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("contact_name", sa.String(64)))


def downgrade() -> None:
    # In place on SQLite (its own DROP COLUMN), without copying the whole table.
    with op.batch_alter_table("notifications", recreate="never") as batch:
        batch.drop_column("contact_name")
