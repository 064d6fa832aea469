"""Moving a SQLite database into an empty PostgreSQL database (`python app.py move-database`).

The source is read in one read transaction (one snapshot), with the service stopped: the
move holds the SQLite file's instance lock (`oncall.cluster.sole`) throughout, so no
service can start on it meanwhile. The target is migrated to the newest revision, then
every table of `metadata` is copied in foreign-key order, in batches, in one transaction
that also advances each table's id sequence past the copied ids and reads every table
back: the commit happens only when each table's row count and checksum
(`oncall.db.checksum`) are the same on both sides, so a failed move leaves the target's
tables empty, ready for another try.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Engine,
    Integer,
    String,
    Table,
    create_engine,
    event,
    exc,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from oncall.cluster.sole import HeldElsewhere, SoleInstance, sqlite_path
from oncall.db.checksum import TableChecksum
from oncall.db.engine import JSON_CODEC, is_sqlite, make_engine
from oncall.db.migrate import MIGRATIONS, upgrade
from oncall.db.models import metadata
from oncall.settings import DatabaseSettings

BATCH = 1000  # rows per read and per insert
# Tables whose rows are the running service's state, not data: not copied.
RUNTIME_TABLES = {
    "leadership": "runtime state (the scheduler's lease): the first instance takes it afresh",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class MoveError(Exception):
    """The move did not happen; the message says why and what the target holds."""


class Refused(MoveError):
    """The move was refused before anything was written."""


@dataclass(frozen=True)
class TableCopy:
    """One table's outcome: rows and checksum read from each side."""

    table: str
    rows: int
    checksum: str
    target_rows: int
    target_checksum: str
    next_id: int | None = None  # the id the table's sequence gives next, if it has one
    skipped: str = ""  # why its rows were not copied (then the other fields are empty)

    @property
    def matches(self) -> bool:
        """Return whether both sides hold the same rows (a skipped table always does)."""
        return bool(self.skipped) or (
            (self.rows, self.checksum) == (self.target_rows, self.target_checksum)
        )


class Mismatch(MoveError):
    """Some table differs after the copy; nothing was committed."""

    def __init__(self, copies: list[TableCopy]) -> None:
        differ = ", ".join(c.table for c in copies if not c.matches)
        super().__init__(f"the copy differs from the source in {differ}; nothing was committed")
        self.copies = copies


@dataclass(frozen=True)
class Moved:
    """What a move copied, and how long it took."""

    copies: list[TableCopy]
    seconds: float


def check_target(url: str, schema: str) -> None:
    """Raise Refused unless `url` and `schema` can name a PostgreSQL target."""
    if not url.startswith("postgresql+asyncpg://"):
        raise Refused("--to: expected a postgresql+asyncpg:// URL")
    if schema and not _IDENTIFIER.match(schema):
        raise Refused(f"--schema: expected an SQL identifier, got {schema!r}")


def head_revision() -> str:
    """Return the newest migration revision of this version of the code."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None  # the migrations folder is part of the package
    return head


def source_engine(path: str) -> Engine:
    """Return an engine that only reads the SQLite file at `path`: query_only, and each
    transaction one snapshot (a plain BEGIN; the stdlib driver would otherwise read each
    statement in a transaction of its own)."""
    engine = create_engine(f"sqlite:///{path}", **JSON_CODEC)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA query_only=ON")
        dbapi_connection.execute("PRAGMA busy_timeout=5000")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def _sole(path: str) -> Iterator[None]:
    """Hold the SQLite file's instance lock, so no service starts on it meanwhile; raises
    Refused naming the holder when a running service has it."""
    lock = SoleInstance(path)
    try:
        lock.acquire()
    except HeldElsewhere as held:
        raise Refused(
            f"{path} is in use by a running service ({held.holder}): stop it first, "
            "so that nothing is written after the copy"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _reason(error: exc.DBAPIError) -> str:
    """Return the driver's error, its first line, shortened (no statement, no values)."""
    return f"{type(error.orig).__name__}: {(str(error.orig).splitlines() or ['?'])[0][:300]}"


def _source_revision(conn: Connection) -> str | None:
    try:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.OperationalError:  # no such table: never migrated
        return None


def _order(table: Table, dialect: str) -> list[ColumnElement[Any]]:
    """Return the ORDER BY of a table's primary key that sorts alike on both backends:
    text by its code points (SQLite's BINARY; PostgreSQL's "C", not the database's
    locale)."""
    columns = list(table.primary_key.columns) or list(table.columns)
    return [
        c.collate("C") if dialect == "postgresql" and isinstance(c.type, String) else c
        for c in columns
    ]


def _occupied(conn: Connection, schema: str) -> list[str]:
    """Return the names of the target's oncall tables that hold rows (runtime state aside)."""
    existing = set(inspect(conn).get_table_names(schema=schema or None))
    return [
        t.name
        for t in metadata.sorted_tables
        if t.name in existing
        and t.name not in RUNTIME_TABLES
        and conn.execute(select(text("1")).select_from(t).limit(1)).first() is not None
    ]


def _checksum(conn: Connection, table: Table, batch: int) -> TableChecksum:
    digest = TableChecksum()
    query = select(table).order_by(*_order(table, conn.dialect.name))
    for part in conn.execute(query, execution_options={"yield_per": batch}).partitions():
        digest.add(part)
    return digest


def _copy_table(source: Connection, target: Connection, table: Table, batch: int) -> TableCopy:
    """Copy one table's rows in batches; return both sides' counts and checksums."""
    digest = TableChecksum()
    keys = [c.key for c in table.columns]
    query = select(table).order_by(*_order(table, "sqlite"))
    try:
        for part in source.execute(query, execution_options={"yield_per": batch}).partitions():
            digest.add(part)
            target.execute(table.insert(), [dict(zip(keys, row, strict=True)) for row in part])
    except exc.DBAPIError as error:
        raise MoveError(
            f"copying {table.name} failed: {_reason(error)}; nothing was committed"
        ) from error
    back = _checksum(target, table, batch)
    return TableCopy(table.name, digest.rows, digest.hexdigest(), back.rows, back.hexdigest())


def _advance_sequence(conn: Connection, table: Table, schema: str) -> int | None:
    """Set the sequence of the table's integer key past its highest id; return the id it
    gives next, or None when the table has no such sequence."""
    columns = [c for c in table.primary_key.columns if isinstance(c.type, Integer)]
    if len(columns) != 1:
        return None
    column = columns[0].name
    qualified = f'"{schema}"."{table.name}"' if schema else f'"{table.name}"'
    sequence = conn.execute(
        text("SELECT pg_get_serial_sequence(:table, :column)"),
        {"table": qualified, "column": column},
    ).scalar()
    if sequence is None:
        return None
    following = conn.execute(
        text(f'SELECT COALESCE(MAX("{column}"), 0) + 1 FROM {qualified}')
    ).scalar_one()
    # is_called false: nextval returns `following` itself.
    conn.execute(
        text("SELECT setval(:sequence, :value, false)"), {"sequence": sequence, "value": following}
    )
    return int(following)


def _copy_all(target: Connection, source: Engine, schema: str, batch: int) -> list[TableCopy]:
    """Copy every table in one read transaction of the source; raises MoveError when the
    target filled up meanwhile, Mismatch when a table differs."""
    tables = [t for t in metadata.sorted_tables if t.name not in RUNTIME_TABLES]
    names = ", ".join(f'"{t.name}"' for t in tables)
    # Nobody writes the target while it is filled: a service started on it too early waits.
    target.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))
    if occupied := _occupied(target, schema):  # filled since the check before migrating
        raise MoveError(f"the target is not empty: {', '.join(occupied)} hold rows")
    copies: list[TableCopy] = []
    with source.connect() as src, src.begin():
        for table in metadata.sorted_tables:
            if table.name in RUNTIME_TABLES:
                why = RUNTIME_TABLES[table.name]
                copies.append(TableCopy(table.name, 0, "", 0, "", skipped=why))
                continue
            copy = _copy_table(src, target, table, batch)
            copies.append(replace(copy, next_id=_advance_sequence(target, table, schema)))
    if not all(c.matches for c in copies):
        raise Mismatch(copies)
    return copies


async def _move(source: Engine, engine: AsyncEngine, schema: str, batch: int) -> list[TableCopy]:
    """Check that the target is empty, migrate it and copy; raises as `move_database`."""
    try:
        async with engine.connect() as conn:
            occupied = await conn.run_sync(_occupied, schema)
    except exc.DBAPIError as error:  # refused, unknown database, wrong password
        raise Refused(f"cannot use the target: {_reason(error)}") from None
    if occupied:
        raise Refused(
            f"the target is not empty: {', '.join(occupied)} hold rows; "
            "move-database copies into an empty database or schema only"
        )
    try:
        await upgrade(engine, schema)
        async with engine.begin() as conn:
            return await conn.run_sync(_copy_all, source, schema, batch)
    except exc.DBAPIError as error:
        raise MoveError(f"the move failed: {_reason(error)}; nothing was committed") from None


async def move_database(source_url: str, target: DatabaseSettings, batch: int = BATCH) -> Moved:
    """Copy the SQLite database of `source_url` into the empty PostgreSQL `target` and
    return what was copied.

    Raises Refused (nothing written) when the source is not a SQLite file at the newest
    revision, a running service holds it, or the target has rows; Mismatch (nothing
    committed) when a table read back differs; MoveError when a row cannot be written;
    OSError when the target cannot be reached.
    """
    started = time.perf_counter()
    check_target(target.url, target.schema)
    path = sqlite_path(source_url) if is_sqlite(source_url) else None
    if path is None:
        raise Refused("[database] url: move-database copies a SQLite database file")
    if not os.path.isfile(path):
        raise Refused(f"no SQLite database at {path}")
    with _sole(path):
        source = source_engine(path)
        engine = make_engine(target)
        try:
            with source.connect() as conn:
                revision, head = _source_revision(conn), head_revision()
            if revision != head:
                raise Refused(
                    f"{path} is at revision {revision or 'none'}, this version's newest is "
                    f"{head}: run `python app.py migrate` first"
                )
            copies = await _move(source, engine, target.schema, batch)
        finally:
            await engine.dispose()
            source.dispose()
    return Moved(copies, time.perf_counter() - started)
