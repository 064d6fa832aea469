"""The fast path: hot statements compiled once and run straight on the SQLite cursor.

SQLAlchemy Core spends far more Python on each execution (parameter processing, execution
context, result set-up) than SQLite's own work for these small statements, which runs
without the GIL; opening an incident runs a few dozen of them, so on the embedded default
that overhead, not SQLite, bounded ingest (BENCHMARKS.md). A `Prepared` keeps its Core
statement (one definition, portable), compiles it once per set of parameter names for the
stdlib `sqlite3` driver, and then only converts values with the column types' own
processors and calls the cursor. Every other backend and driver (PostgreSQL, aiosqlite)
gets the ordinary `Connection.execute`.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

_EXPANDING = "__[POSTCOMPILE_{}]"
_Processor = Callable[[Any], Any] | None


class Rows:
    """The rows and row count of one fast execution, answering the part of SQLAlchemy's
    `Result` interface the store uses (`first`, `one`, `all`, `scalar`, `scalar_one`,
    `scalars`, `rowcount`, iteration)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        """Return the first row, or None."""
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        """Return the only row; raises NoResultFound or MultipleResultsFound."""
        if len(self._rows) != 1:
            raise (
                exc.NoResultFound("no row was found")
                if not self._rows
                else exc.MultipleResultsFound("multiple rows were found")
            )
        return self._rows[0]

    def scalar(self) -> Any:
        """Return the first column of the first row, or None."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        """Return the first column of the only row; raises as `one` does."""
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class _Form:
    """A statement compiled for one set of parameter names: its SQL and its converters."""

    def __init__(self, statement: Executable, dialect: Dialect, keys: Sequence[str]) -> None:
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
        assert isinstance(compiled, SQLCompiler)
        self.sql: str = compiled.string
        # (name, value when the caller gives none, bind converter, expanding IN list)
        self.slots: list[tuple[str, Any, _Processor, bool]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.slots.append((name, bind.effective_value, processor, bind.expanding))
        self.expanding = any(slot[3] for slot in self.slots)
        self._expanded: dict[tuple[int, ...], str] = {}
        columns = list(getattr(statement, "exported_columns", ()))
        self.row: Callable[..., Any] | None = None
        self.converters: list[tuple[int, Callable[[Any], Any]]] = []
        if columns:
            self.row = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
            for index, column in enumerate(columns):
                convert = column.type.dialect_impl(dialect).result_processor(dialect, None)
                if convert is not None:
                    self.converters.append((index, convert))

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        """Return the positional values for `params`, converted for the driver."""
        get = params.get
        if not self.expanding:
            return [
                get(name, default) if processor is None else processor(get(name, default))
                for name, default, processor, _ in self.slots
            ]
        out: list[Any] = []
        for name, default, processor, expanding in self.slots:
            value = get(name, default)
            if expanding:
                out.extend(value if processor is None else map(processor, value))
            else:
                out.append(value if processor is None else processor(value))
        return out

    def expanded_sql(self, params: Mapping[str, Any]) -> str:
        """Return the SQL with each expanding IN list written out for these values."""
        sizes = tuple(
            len(params.get(name, default))
            for name, default, _, expanding in self.slots
            if expanding
        )
        sql = self._expanded.get(sizes)
        if sql is None:
            sql = self.sql
            for (name, _, _, _), size in zip(
                (slot for slot in self.slots if slot[3]), sizes, strict=True
            ):
                # An empty IN list matches nothing, as SQLAlchemy renders it.
                sql = sql.replace(_EXPANDING.format(name), ", ".join("?" * size) or "NULL")
            self._expanded[sizes] = sql
        return sql

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        """Return the fetched rows as named tuples of converted values."""
        assert self.row is not None
        if not self.converters:
            return [self.row(*r) for r in raw]
        rows = []
        for r in raw:
            values = list(r)
            for index, convert in self.converters:
                values[index] = convert(values[index])
            rows.append(self.row(*values))
        return rows


class Prepared:
    """A module-level Core statement, executed on the stdlib SQLite cursor when it can be."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._forms: dict[tuple[str, ...], _Form] = {}

    def execute(
        self,
        conn: Connection,
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> Any:
        """Execute with one set of parameters, or a list of them (executemany, no rows).

        Returns `Rows` on stdlib SQLite, SQLAlchemy's result elsewhere. Raises SQLAlchemy's
        wrapped DBAPI errors (IntegrityError, OperationalError, ...) either way.
        """
        if not on_stdlib_sqlite(conn):
            return conn.execute(self.statement, params)
        if isinstance(params, list):
            return self._execute_many(conn, params)
        first: Mapping[str, Any] = params or {}  # type: ignore[assignment]
        form = self._form(conn, first)
        driver = _driver(conn)
        sql = form.expanded_sql(first) if form.expanding else form.sql
        try:
            cursor = driver.execute(sql, form.values(first))
            raw = cursor.fetchall() if form.row is not None else []
        except _DBAPI_ERROR as error:
            raise _wrapped(conn, sql, params, error) from error
        return Rows(form.rows(raw) if raw else [], cursor.rowcount)

    def _form(self, conn: Connection, params: Mapping[str, Any]) -> _Form:
        keys = tuple(params)
        form = self._forms.get(keys)
        if form is None:
            form = self._forms[keys] = _Form(self.statement, conn.dialect, keys)
        return form

    def _execute_many(self, conn: Connection, params: list[Mapping[str, Any]]) -> Rows:
        if not params:
            return Rows([], 0)
        form = self._form(conn, params[0])
        if form.expanding:
            raise exc.ArgumentError("executemany with an expanding IN list")
        try:
            cursor = _driver(conn).executemany(form.sql, [form.values(p) for p in params])
        except _DBAPI_ERROR as error:
            raise _wrapped(conn, form.sql, params, error) from error
        return Rows([], cursor.rowcount)


def on_stdlib_sqlite(conn: Connection) -> bool:
    """Return whether `conn` runs on the stdlib `sqlite3` driver, where the statements of
    this module go straight to the cursor (elsewhere they go through SQLAlchemy)."""
    return conn.dialect.driver == "pysqlite"


# The stdlib driver's base error. (Written out, not a context manager: entering and
# leaving one per statement costs a measurable share of the store's Python time.)
_DBAPI_ERROR = sqlite3.Error


def _driver(conn: Connection) -> Any:
    """Return the `sqlite3` connection under `conn`."""
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def _wrapped(conn: Connection, sql: str, params: Any, error: Exception) -> exc.StatementError:
    """Return a driver error as SQLAlchemy's (IntegrityError, OperationalError, ...),
    naming `sql`, as `Connection.execute` would raise it."""
    return exc.DBAPIError.instance(sql, params, error, conn.dialect.loaded_dbapi.Error)


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """Run the block in a savepoint: when it raises, its writes alone are rolled back and
    the error propagates; the enclosing transaction goes on.

    On stdlib SQLite this is SAVEPOINT / RELEASE on the cursor: SQLAlchemy's
    `begin_nested` builds and compiles a new statement for every savepoint (unique names),
    which cost as much as the rest of a new incident's statements together.
    """
    if not on_stdlib_sqlite(conn):
        with conn.begin_nested():
            yield
        return
    # SQLite matches a RELEASE or ROLLBACK TO with the innermost savepoint of that name,
    # so nested blocks can share one.
    execute_sql(conn, "SAVEPOINT oncall")
    try:
        yield
    except BaseException:
        execute_sql(conn, "ROLLBACK TO oncall")
        execute_sql(conn, "RELEASE oncall")
        raise
    execute_sql(conn, "RELEASE oncall")


def execute_sql(conn: Connection, sql: str) -> None:
    """Run a statement without parameters or rows on the stdlib SQLite cursor (BEGIN,
    SAVEPOINT): through SQLAlchemy it costs more than a small statement's own work.
    Raises SQLAlchemy's wrapped DBAPI errors, so a busy database is still OperationalError.
    """
    try:
        _driver(conn).execute(sql)
    except _DBAPI_ERROR as error:
        raise _wrapped(conn, sql, None, error) from error
