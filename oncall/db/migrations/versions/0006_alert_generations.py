"""Alert generations: an occurrence that fires again after its incident closed gets a new
row (the next generation) in a new incident, so the occurrence key gains `generation`.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OCCURRENCE = ["integration", "fingerprint", "starts_at"]


def upgrade() -> None:
    # Every stored row is its occurrence's first generation.
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("generation", sa.Integer, nullable=False, server_default="0"))
        batch.drop_constraint("uq_alerts_occurrence", type_="unique")
        batch.create_unique_constraint("uq_alerts_occurrence", [*OCCURRENCE, "generation"])


def downgrade() -> None:
    # Only an occurrence's newest generation can keep the old key.
    op.execute(
        "DELETE FROM alerts WHERE EXISTS (SELECT 1 FROM alerts AS newer"
        " WHERE newer.integration = alerts.integration"
        " AND newer.fingerprint = alerts.fingerprint"
        " AND newer.starts_at = alerts.starts_at"
        " AND newer.generation > alerts.generation)"
    )
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alerts_occurrence", type_="unique")
        batch.create_unique_constraint("uq_alerts_occurrence", OCCURRENCE)
        batch.drop_column("generation")
