"""Alembic environment: always runs on the connection handed over by oncall.db.migrate."""

from alembic import context

from oncall.db.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
