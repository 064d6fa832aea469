"""A level may be paged again: unacknowledging an incident, escalating it or reassigning it
by hand fires a step that has already paged its users, and those pages are new rows.

The unique (incident, kind, level, repeat, user, contact) key of pages goes: a step writes
its pages once because its transaction claims the step first (a conditional UPDATE of the
incident), which the key never needed.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_PAGE_KEY = ["incident_id", "kind", "level", "repeat", "user_name", "contact_index"]


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint("uq_notifications_page", type_="unique")


def downgrade() -> None:
    # Fails while a page has been written twice (a level paged again): the older schema
    # cannot hold those rows, and deleting a page's history is not a migration's choice.
    with op.batch_alter_table("notifications") as batch:
        batch.create_unique_constraint("uq_notifications_page", _PAGE_KEY)
