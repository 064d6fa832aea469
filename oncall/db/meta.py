"""The deployment's identity, kept in the database: every job this deployment writes names
it, so a job written by another deployment sharing the Redis key prefix is recognised."""

from __future__ import annotations

import secrets

from sqlalchemy import exc, insert, select
from sqlalchemy.engine import Connection

from oncall.db.fastpath import savepoint
from oncall.db.models import meta

_KEY = "deployment_id"


def deployment_id(conn: Connection) -> str:
    """Return this deployment's id, creating it on first use (kept in `meta`). Two
    processes starting together on one database agree on one id."""
    value = conn.execute(select(meta.c.value).where(meta.c.key == _KEY)).scalar()
    if value is None:
        value = secrets.token_hex(6)
        try:
            with savepoint(conn):
                conn.execute(insert(meta).values(key=_KEY, value=value))
        except exc.IntegrityError:  # the other one was first: take its id
            value = conn.execute(select(meta.c.value).where(meta.c.key == _KEY)).scalar_one()
    return str(value)
