"""The deployment's id: created once, then the same for every process on the database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

from oncall.db.meta import deployment_id
from tests.support.db import sqlite_connection


def test_the_deployment_id_is_made_once_and_kept(sqlite_conn: Connection, tmp_path: Path) -> None:
    first = deployment_id(sqlite_conn)
    assert deployment_id(sqlite_conn) == first
    with sqlite_connection(tmp_path / "other.db") as other:
        assert deployment_id(other) != first  # another database, another deployment
