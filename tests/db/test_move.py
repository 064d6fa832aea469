"""move-database: a SQLite database copied into an empty PostgreSQL schema, every table,
verified by row counts and checksums that are equal on both backends for equal rows;
refused with nothing written for a target with rows or a database a service holds; ids
continue past the copied ones. (Each test uses both backends: SQLite is the source,
PostgreSQL the target.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from oncall.cluster.sole import HeldElsewhere, SoleInstance
from oncall.db import move
from oncall.db.checksum import TableChecksum, encode, encode_row
from oncall.db.engine import make_engine, sqlite_engine, sqlite_url
from oncall.db.migrate import upgrade
from oncall.db.models import Json, NullableJson, UTCDateTime, incidents, metadata
from oncall.settings import DatabaseSettings
from tests.support.db import POSTGRES_URL, drop_schema
from tests.support.factories import T0

ROWS = 12  # per table
# Text keys whose order differs between code points and a language's collation.
WORDS = ["Beta", "alpha", "älpha", "_z", "Zed", "a b"]
TRICKY_JSON: dict[str, Any] = {
    "z": 1,
    "a": [1.0, 0.1, 1e300, 1e16, 1.5e-7, -0.0, 12345678901234567890, True, False, None],
    "text": 'ä☃\n"q" \\',
    "nested": {"b": {"c": [], "d": {}}, "a": 2.5},
}


def value_for(column: Column[Any], i: int) -> Any:
    """Return row `i`'s value of a column, made up from its type alone (a foreign key
    takes row `i` of the table it refers to), so that a table added later is filled too."""
    for key in column.foreign_keys:
        return value_for(key.column, i)
    kind = column.type
    if column.nullable and not column.primary_key and i % 3 == 0:
        return None
    if isinstance(kind, UTCDateTime | DateTime):
        zone = timezone(timedelta(hours=i % 3 - 1))  # any zone in, the UTC instant stored
        return (T0 + timedelta(seconds=i, microseconds=i * 1001)).astimezone(zone)
    if isinstance(kind, Boolean):
        return i % 2 == 0
    if isinstance(kind, Integer):
        return i if column.primary_key else i * 7
    if isinstance(kind, String):
        word = f"{WORDS[i % len(WORDS)]}{i}"
        return word[: kind.length] if kind.length else word
    if isinstance(kind, JSON):
        return {**TRICKY_JSON, "i": i}
    raise TypeError(f"{column}: no made-up value for {kind!r}")


def fill(conn: Connection, rows: int = ROWS) -> dict[str, int]:
    """Fill every table of the models but the runtime ones; return the rows per table."""
    filled = {}
    for table in metadata.sorted_tables:
        if table.name in move.RUNTIME_TABLES:
            continue
        values = [{c.key: value_for(c, i) for c in table.columns} for i in range(1, rows + 1)]
        conn.execute(insert(table), values)
        filled[table.name] = rows
    return filled


def read_all(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every copied table, in primary-key order, as Python values."""
    return {
        t.name: [
            tuple(r) for r in conn.execute(select(t).order_by(*move._order(t, conn.dialect.name)))
        ]
        for t in metadata.sorted_tables
        if t.name not in move.RUNTIME_TABLES
    }


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A migrated SQLite database with ROWS rows in every table; returns its URL."""
    url = f"sqlite+aiosqlite:///{tmp_path}/oncall.db"
    asyncio.run(migrate(DatabaseSettings(url, "")))
    engine = sqlite_engine(sqlite_url(make_engine(DatabaseSettings(url, ""))))
    with engine.begin() as conn:
        fill(conn)
    engine.dispose()
    return url


async def migrate(settings: DatabaseSettings) -> None:
    engine = make_engine(settings)
    try:
        await upgrade(engine, settings.schema)
    finally:
        await engine.dispose()


@pytest.fixture
def schema() -> Iterator[str]:
    """A PostgreSQL schema name of this test's own (created by the move), dropped after."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    drop_schema(name)


@pytest.fixture
async def target(schema: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's schema, to read what the move wrote."""
    engine = make_engine(DatabaseSettings(POSTGRES_URL, schema))
    yield engine
    await engine.dispose()


async def schema_exists(name: str) -> bool:
    conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", name)
    finally:
        await conn.close()
    return found is not None


# -- the canonical encoding -------------------------------------------------------------

probe_metadata = MetaData()
probe = Table(
    "checksum_probe",
    probe_metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime),
    Column("flag", Boolean),
    Column("ratio", Float),
    Column("amount", Numeric(12, 4)),
    Column("name", String(64)),
    Column("body", Text),
    Column("doc", Json),
    Column("maybe", NullableJson),
    Column("blob", LargeBinary),
)
PROBE_ROWS = [
    # every kind of value, and the ones the backends store differently
    {
        "id": 1,
        "at": datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone(timedelta(hours=-7))),
        "flag": True,
        "ratio": 0.1,
        "amount": Decimal("12.5000"),
        "name": "älpha ☃",
        "body": 'line\nline\t\\ "quoted" \u2028',
        "doc": TRICKY_JSON,
        "maybe": None,
        "blob": b"\x00\xff",
    },
    # a whole-second instant, zero values and empty containers
    {
        "id": 2,
        "at": datetime(2026, 1, 1, tzinfo=UTC),
        "flag": False,
        "ratio": -0.0,
        "amount": Decimal("0"),
        "name": "",
        "body": "",
        "doc": {"empty": {}, "list": []},
        "maybe": [1e-7, 2.0],
        "blob": b"",
    },
    # NULL everywhere it can be
    {
        "id": 3,
        "at": None,
        "flag": None,
        "ratio": 1e300,
        "amount": None,
        "name": None,
        "body": None,
        "doc": None,
        "maybe": None,
        "blob": None,
    },
]


def _probe_rows(conn: Connection) -> list[tuple[Any, ...]]:
    probe_metadata.create_all(conn)
    conn.execute(insert(probe), PROBE_ROWS)
    return [tuple(r) for r in conn.execute(select(probe).order_by(probe.c.id))]


async def test_equal_rows_encode_alike_on_sqlite_and_postgresql(tmp_path, schema):
    engine = sqlite_engine(f"sqlite:///{tmp_path}/probe.db")
    with engine.begin() as conn:
        on_sqlite = _probe_rows(conn)
    engine.dispose()
    postgres = make_engine(DatabaseSettings(POSTGRES_URL, schema))
    try:
        async with postgres.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            on_postgres = await conn.run_sync(_probe_rows)
    finally:
        await postgres.dispose()
    # The drivers give different Python values for some of them ...
    # (JSONB keeps 1e16 as the number 10000000000000000, read back as an integer)
    assert [type(rows[0][7]["a"][3]) for rows in (on_sqlite, on_postgres)] == [float, int]
    # ... and the same text for every one.
    for lite, pg in zip(on_sqlite, on_postgres, strict=True):
        assert encode_row(lite) == encode_row(pg)
    digests = []
    for rows in (on_sqlite, on_postgres):
        digest = TableChecksum()
        digest.add(rows)
        digests.append(digest.hexdigest())
    assert digests[0] == digests[1]


# (case, one value, another that must encode differently)
DIFFERENT = [
    ("an integer and the next", 1, 2),
    ("a boolean and the integer SQLite stores", True, 1),
    ("an empty text and NULL", "", None),
    ("a number and its text", 1, "1"),
    ("instants a microsecond apart", T0, T0 + timedelta(microseconds=1)),
    ("JSON with another key", {"a": 1}, {"b": 1}),
    ("JSON null and a missing key", {"a": None}, {}),
    ("a list and a reordered one", [1, 2], [2, 1]),
]


@pytest.mark.parametrize(
    ("one", "other"), [c[1:] for c in DIFFERENT], ids=[c[0] for c in DIFFERENT]
)
def test_different_values_encode_differently(one, other):
    assert encode(one) != encode(other)


# (case, one value, an equal one as the other backend may give it back)
SAME = [
    ("an instant in two zones", T0, T0.astimezone(timezone(timedelta(hours=5)))),
    ("a naive datetime is UTC", T0.replace(tzinfo=None), T0),
    ("a float that is an integer", 1e16, 10**16),
    ("negative zero", -0.0, 0),
    ("JSON keys in another order", {"a": 1, "b": [1.5]}, {"b": [1.5], "a": 1}),
    ("a decimal with trailing zeros", Decimal("12.5000"), 12.5),
]


@pytest.mark.parametrize(("one", "other"), [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_equal_values_encode_alike(one, other):
    assert encode(one) == encode(other)


def test_the_quick_number_paths_give_the_exact_decimal_text():
    from oncall.db import checksum

    numbers = [0, 7, 10, -120, 10**20 + 1, 0.0, -0.0, 2.5, 12.0, 1200.0, 0.0001, 1e-5]
    numbers += [1e15, 1e16, 123456.789, 9007199254740993.0, 1.2345678901234567e19, float("inf")]
    for n in numbers:
        assert checksum.encode(n) == checksum._number(n), n


def test_an_unknown_type_is_refused_rather_than_guessed():
    with pytest.raises(TypeError, match="set"):
        encode({1, 2})


# -- the move ---------------------------------------------------------------------------


async def test_it_copies_every_table_and_reports_counts_and_checksums(source, schema, target):
    engine = sqlite_engine(sqlite_url(make_engine(DatabaseSettings(source, ""))))
    with engine.connect() as conn:
        before = read_all(conn)
    engine.dispose()

    moved = await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema), batch=5)

    by_table = {c.table: c for c in moved.copies}
    assert list(by_table) == [t.name for t in metadata.sorted_tables]
    assert {n: c.skipped for n, c in by_table.items() if c.skipped} == {
        name: move.RUNTIME_TABLES[name] for name in move.RUNTIME_TABLES if name in metadata.tables
    }
    async with target.connect() as conn:
        after = await conn.run_sync(read_all)
    assert after == before  # every value, as Python reads it
    for name, rows in before.items():
        copy = by_table[name]
        expected = TableChecksum()
        expected.add(rows)
        assert (copy.rows, copy.target_rows) == (ROWS, ROWS), name
        assert copy.checksum == copy.target_checksum == expected.hexdigest(), name
        assert copy.matches


async def test_new_rows_get_ids_past_the_copied_ones(source, schema, target):
    moved = await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema))
    with_ids = {c.table: c.next_id for c in moved.copies if c.next_id is not None}
    assert with_ids["incidents"] == ROWS + 1
    assert "meta" not in with_ids  # a text key has no sequence

    def add_incident(conn: Connection) -> int:
        values = {c.key: value_for(c, 1) for c in incidents.columns if c.key != "id"}
        values["dedup_key"] = "new"
        return conn.execute(insert(incidents).values(values).returning(incidents.c.id)).scalar_one()

    async with target.begin() as conn:
        assert await conn.run_sync(add_incident) == ROWS + 1
        for table, next_id in with_ids.items():
            found = await conn.execute(
                text("SELECT nextval(pg_get_serial_sequence(:t, 'id'))"), {"t": f'"{table}"'}
            )
            assert found.scalar_one() >= next_id, table


async def test_text_keys_are_checksummed_alike_whatever_the_targets_collation(source):
    # A database whose text sorts by a language's rules, not by code point: "älpha"
    # between "alpha" and "Beta".
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    await admin.execute(
        f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
        "LOCALE 'C.UTF-8'"
    )
    try:
        url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
        moved = await move.move_database(source, DatabaseSettings(url, ""))
        assert all(c.matches for c in moved.copies)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def snapshot_target(target: AsyncEngine) -> dict[str, Any]:
    """Every row of every table of the schema, the migrations' version and sequences."""
    async with target.connect() as conn:
        rows = await conn.run_sync(read_all)
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        sequences = (
            await conn.execute(
                text(
                    "SELECT sequencename, last_value FROM pg_sequences"
                    " WHERE schemaname = current_schema() ORDER BY sequencename"
                )
            )
        ).all()
    return {"rows": rows, "version": version, "sequences": sequences}


async def test_a_target_with_rows_is_refused_and_nothing_is_written(source, schema, target):
    await migrate(DatabaseSettings(POSTGRES_URL, schema))
    async with target.begin() as conn:
        values = {c.key: value_for(c, 1) for c in incidents.columns}
        await conn.execute(insert(incidents).values(values))
    before = await snapshot_target(target)

    with pytest.raises(move.Refused, match="not empty: incidents hold rows"):
        await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema))

    assert await snapshot_target(target) == before


async def test_a_database_a_service_holds_is_refused_and_nothing_is_written(source, schema):
    path = source.split(":///", 1)[1]
    service = SoleInstance(path)
    service.acquire()  # as a running service does
    try:
        with pytest.raises(move.Refused, match=r"in use by a running service \(pid \d+ on "):
            await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema))
    finally:
        service.release()
    assert not await schema_exists(schema)


async def test_a_database_the_move_holds_cannot_be_started_on(source, schema, monkeypatch):
    seen: list[str] = []
    copy_table = move._copy_table

    def copying(src: Any, dst: Any, table: Table, batch: int) -> Any:
        if not seen:  # mid-copy, a service starting on the SQLite file
            with pytest.raises(HeldElsewhere):
                SoleInstance(source.split(":///", 1)[1]).acquire()
            seen.append(table.name)
        return copy_table(src, dst, table, batch)

    monkeypatch.setattr(move, "_copy_table", copying)
    await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema))
    assert seen


async def test_a_row_postgresql_refuses_stops_the_move_and_commits_nothing(source, schema, target):
    engine = sqlite_engine(sqlite_url(make_engine(DatabaseSettings(source, ""))))
    with engine.begin() as conn:  # SQLite does not enforce a text column's length
        conn.execute(text("UPDATE incidents SET status = :s WHERE id = 3"), {"s": "x" * 40})
    engine.dispose()

    with pytest.raises(move.MoveError, match=r"copying incidents failed: .*value too long"):
        await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema))

    async with target.connect() as conn:
        rows = await conn.run_sync(read_all)
    assert rows == {name: [] for name in rows}  # migrated, and empty: ready for another try


async def test_a_copy_that_reads_back_differently_is_not_committed(
    source, schema, target, monkeypatch
):
    checksum = move._checksum

    def damaged(conn: Connection, table: Table, batch: int) -> TableChecksum:
        found = checksum(conn, table, batch)
        if table.name == "alerts":  # as if a value had changed on the way
            found.add([("changed",)])
        return found

    monkeypatch.setattr(move, "_checksum", damaged)
    with pytest.raises(move.Mismatch, match="differs from the source in alerts;") as raised:
        await move.move_database(source, DatabaseSettings(POSTGRES_URL, schema))

    assert [c.table for c in raised.value.copies if not c.matches] == ["alerts"]
    async with target.connect() as conn:
        rows = await conn.run_sync(read_all)
    assert rows == {name: [] for name in rows}


async def test_a_source_behind_the_newest_migration_is_refused(tmp_path, schema):
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(move.Refused, match=r"revision none, .* run `python app.py migrate`"):
        await move.move_database(
            f"sqlite+aiosqlite:///{path}", DatabaseSettings(POSTGRES_URL, schema)
        )
    assert not await schema_exists(schema)


# -- the command ------------------------------------------------------------------------


@pytest.fixture
def settings_env(source, monkeypatch, tmp_path):
    monkeypatch.setenv("ONCALL_SETTINGS", "/dev/null")
    monkeypatch.setenv("ONCALL_DATABASE_URL", source)
    monkeypatch.delenv("ONCALL_DATABASE_SCHEMA", raising=False)


def test_the_command_prints_the_tables_and_the_settings_to_change(settings_env, schema, capsys):
    from oncall.cli import main

    to = POSTGRES_URL.replace("postgres@", "postgres:pw-of-test@")
    assert main(["move-database", "--to", to, "--schema", schema]) == 0
    out = capsys.readouterr().out
    for table in metadata.sorted_tables:
        assert f"\n{table.name} " in out
    assert "not copied: runtime state" in out
    assert f"[database]\nurl = {to.replace('pw-of-test', '***')}\nschema = {schema}\n" in out
    assert "pw-of-test" not in out


def test_the_command_refuses_a_target_with_rows_with_exit_code_1(settings_env, schema, capsys):
    from oncall.cli import main

    args = ["move-database", "--to", POSTGRES_URL, "--schema", schema]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("move-database: the target is not empty: ")
    assert " incidents, " in captured.err
