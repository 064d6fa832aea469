"""Prepared statements on the stdlib SQLite cursor give what SQLAlchemy's own execution gives:
the same rows and types, the same row counts, server defaults, IN lists and wrapped errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, exc, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from oncall.db.fastpath import Prepared, Rows, savepoint
from oncall.db.models import UTCDateTime, alerts, incidents

T0 = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)

_insert_incident = insert(incidents).returning(incidents.c.id)
_insert_alert = insert(alerts)
_by_id = select(incidents).where(incidents.c.id == bindparam("incident_id"))
_alerts_in = (
    select(alerts.c.fingerprint, alerts.c.status, alerts.c.starts_at, incidents.c.status)
    .join(incidents, incidents.c.id == alerts.c.incident_id)
    .where(
        alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)),
        alerts.c.status.in_(("firing", "resolved")),
    )
    .order_by(alerts.c.fingerprint)
)
_resolve = (
    update(alerts)
    .where(alerts.c.incident_id == bindparam("incident"))
    .values(status="resolved", ends_at=bindparam("now"))
)


@pytest.fixture
def conn(sqlite_conn: Connection) -> Connection:
    return sqlite_conn


def incident(**overrides: Any) -> dict[str, Any]:
    values = {
        "integration": "am",
        "dedup_key": "g1",
        "status": "triggered",
        "title": "Disk",
        "severity": "critical",
        "labels": {"alertname": "Disk", "n": [1, 2]},
        "annotations": {"summary": "full"},
        "created_at": T0,
        "updated_at": T0,
        "notify_resolved": False,
        "next_level": 1,
        "next_repeat": 0,
        "next_due_at": T0 + timedelta(minutes=5),
    }
    return {**values, **overrides}


def alert(incident_id: int, fingerprint: str) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "integration": "am",
        "fingerprint": fingerprint,
        "starts_at": T0,
        "status": "firing",
        "labels": {"f": fingerprint},
        "annotations": {},
        "created_at": T0,
        "updated_at": T0,
    }


def test_rows_match_sqlalchemy_types_and_server_defaults(conn: Connection) -> None:
    incident_id = Prepared(_insert_incident).execute(conn, incident()).scalar_one()
    fast = Prepared(_by_id).execute(conn, {"incident_id": incident_id})
    assert isinstance(fast, Rows)
    expected = conn.execute(_by_id, {"incident_id": incident_id}).one()
    row = fast.one()
    assert tuple(row) == tuple(expected)
    assert row.next_due_at == T0 + timedelta(minutes=5) and row.next_due_at.tzinfo == UTC
    assert row.labels == {"alertname": "Disk", "n": [1, 2]}
    assert row.notify_resolved is False
    # Columns the caller left out take the table's server defaults, not NULL.
    assert (row.external_url, row.alert_count, row.truncated_alerts) == ("", 0, 0)


def test_in_lists_executemany_and_row_counts(conn: Connection) -> None:
    first = Prepared(_insert_incident).execute(conn, incident()).scalar_one()
    second = Prepared(_insert_incident).execute(conn, incident(dedup_key="g2")).scalar_one()
    added = Prepared(_insert_alert).execute(
        conn, [alert(first, "a"), alert(first, "b"), alert(second, "c")]
    )
    assert added.rowcount == 3
    assert Prepared(_resolve).execute(conn, {"incident": first, "now": T0}).rowcount == 2
    query = Prepared(_alerts_in)
    for fingerprints in (["a"], ["c", "b", "a"], ["zz"], []):
        fast = query.execute(conn, {"fingerprints": fingerprints}).all()
        slow = conn.execute(_alerts_in, {"fingerprints": fingerprints}).all()
        assert [tuple(r) for r in fast] == [tuple(r) for r in slow]
    rows = query.execute(conn, {"fingerprints": ["a", "c"]}).all()
    assert [(r.fingerprint, r.status) for r in rows] == [("a", "resolved"), ("c", "firing")]
    assert rows[0].starts_at == T0
    assert Prepared(_by_id).execute(conn, {"incident_id": 999}).first() is None


def test_driver_errors_are_wrapped_like_sqlalchemy(conn: Connection) -> None:
    statement = Prepared(_insert_incident)
    statement.execute(conn, incident())
    with pytest.raises(exc.IntegrityError):  # a second open incident of one group
        statement.execute(conn, incident())
    with pytest.raises(exc.NoResultFound):
        Prepared(_by_id).execute(conn, {"incident_id": 999}).one()


def test_a_savepoint_rolls_back_only_its_own_writes(conn: Connection) -> None:
    statement = Prepared(_insert_incident)
    kept = statement.execute(conn, incident()).scalar_one()
    with pytest.raises(exc.IntegrityError), savepoint(conn):
        statement.execute(conn, incident(dedup_key="g2"))
        with savepoint(conn):  # nested, and released on success
            statement.execute(conn, incident(dedup_key="g3"))
        statement.execute(conn, incident())  # the group's second open incident: refused
    with savepoint(conn):
        statement.execute(conn, incident(dedup_key="g4"))
    keys = conn.execute(select(incidents.c.id, incidents.c.dedup_key)).all()
    assert [tuple(k) for k in keys] == [(kept, "g1"), (kept + 1, "g4")]


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        T0.replace(microsecond=0),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2))),
        None,
    ],
)
def test_utc_datetimes_on_sqlite_keep_the_general_storage_format(moment: datetime | None) -> None:
    dialect = sqlite.dialect()
    column_type = UTCDateTime()
    fast_bind = column_type.dialect_impl(dialect).bind_processor(dialect)
    fast_result = column_type.dialect_impl(dialect).result_processor(dialect, None)
    # The general path: process_bind_param, then SQLite's own DATETIME conversion.
    general = sqlite.DATETIME()
    general_bind = general.bind_processor(dialect)
    general_result = general.result_processor(dialect, None)
    assert fast_bind is not None and fast_result is not None
    assert general_bind is not None and general_result is not None
    stored = general_bind(column_type.process_bind_param(moment, dialect))
    assert fast_bind(moment) == stored
    assert fast_result(stored) == column_type.process_result_value(general_result(stored), dialect)
    if moment is not None:
        assert fast_result(stored) == moment and fast_result(stored).tzinfo == UTC
        with pytest.raises(ValueError, match="naive"):
            fast_bind(moment.replace(tzinfo=None))


def test_columns_share_one_memo_of_datetime_texts() -> None:
    """A transaction binds its `now` in dozens of columns: it is converted once, not once
    per column (each converter kept its own memo before)."""
    dialect = sqlite.dialect()
    first = incidents.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    second = alerts.c.starts_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert first is not None and second is not None
    moment = datetime(2026, 11, 28, 13, 1, 2, 345678, tzinfo=UTC)
    text = first(moment)
    assert text == "2026-11-28 13:01:02.345678"
    assert second(moment) is text  # the same string: converted once
    # Equal instants in another zone share it too, and give the same stored text.
    assert second(moment.astimezone(timezone(timedelta(hours=-5)))) is text
