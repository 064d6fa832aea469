"""Applies the Alembic migrations in `oncall/migrations` to the configured database."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    # env.py uses this connection (Alembic's connection-sharing recipe), so the migration
    # runs inside our async engine's transaction.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(engine: AsyncEngine, schema: str = "") -> None:
    """Bring the database schema to the newest revision; a no-op when it is current."""
    async with engine.begin() as conn:
        if schema and conn.dialect.name == "postgresql":
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.execute(text(f'SET search_path TO "{schema}"'))
        await conn.run_sync(_upgrade)
