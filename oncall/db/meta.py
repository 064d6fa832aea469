"""The deployment's identity, kept in the database: every job this deployment writes names
it, so a job written by another deployment sharing the Redis key prefix is recognised."""

from __future__ import annotations

import secrets

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from oncall.db.models import meta


def deployment_id(conn: Connection) -> str:
    """Return this deployment's id, creating it on first use (kept in `meta`)."""
    value = conn.execute(select(meta.c.value).where(meta.c.key == "deployment_id")).scalar()
    if value is None:
        value = secrets.token_hex(6)
        conn.execute(insert(meta).values(key="deployment_id", value=value))
    return str(value)
