"""Applies the Alembic migrations in `oncall/migrations` to the configured database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    # env.py uses this connection (Alembic's connection-sharing recipe), so the migration
    # runs inside our async engine's transaction.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@asynccontextmanager
async def migrating(engine: AsyncEngine, schema: str = "") -> AsyncIterator[AsyncConnection]:
    """Yield a connection, in a transaction, for running migrations.

    On PostgreSQL `schema` is created when missing and selected. On SQLite foreign keys
    are off meanwhile: a batch migration rebuilds a table by copying it and dropping the
    old one, and with foreign keys on that drop cascades to every row referring to it
    (every alert and page of every incident). They are checked before the commit instead;
    raises RuntimeError (and commits nothing) when a row refers to nothing.
    """
    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = (await conn.get_raw_connection()).driver_connection if sqlite else None
        if raw is not None:  # outside a transaction: inside one SQLite ignores the pragma
            await raw.execute("PRAGMA foreign_keys=OFF")
        try:
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    # Instances of a cluster starting together migrate one at a time: the
                    # next one finds the schema current (a lock per schema, held until
                    # this transaction ends).
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                        {"key": f"oncall migrations {schema}"},
                    )
                if schema and conn.dialect.name == "postgresql":
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    await conn.execute(text(f'SET search_path TO "{schema}"'))
                yield conn
                if sqlite:
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"migration left rows referring to nothing: {broken}")
        finally:
            if raw is not None:
                await raw.execute("PRAGMA foreign_keys=ON")


async def upgrade(engine: AsyncEngine, schema: str = "") -> None:
    """Bring the database schema to the newest revision; a no-op when it is current."""
    async with migrating(engine, schema) as conn:
        await conn.run_sync(_upgrade)
