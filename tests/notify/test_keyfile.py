"""The generated link-signing key lives in a file of mode 0600, not in the database; a key an
older version kept in the database's `meta` table moves into that file."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from oncall.db.engine import Database, make_engine
from oncall.db.migrate import upgrade
from oncall.db.models import meta
from oncall.errors import ConfigError
from oncall.notify.notifier import link_key
from oncall.settings import SPEC, Settings

LEGACY_KEY = "key-an-older-version-kept-in-meta-0123456789"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def meta_key(conn: Connection) -> str | None:
    return conn.execute(select(meta.c.value).where(meta.c.key == "link_secret")).scalar()


def put_legacy_key(conn: Connection) -> None:
    conn.execute(insert(meta).values(key="link_secret", value=LEGACY_KEY))


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "secret.key"  # its directory does not exist yet


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    # The default `[security] secret_key_file`, data/secret.key, relative to this test's own
    # working directory.
    monkeypatch.chdir(tmp_path)
    return make_settings(security_secret_key_file=SPEC["security"]["secret_key_file"][1])


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    engine = make_engine(settings.database)
    await upgrade(engine, settings.database.schema)
    database = Database(engine)
    yield database
    await database.close()


async def test_a_generated_key_is_kept_in_a_private_file_and_not_in_the_database(
    db: Database, settings: Settings, key_path: Path
) -> None:
    key = await link_key(db, settings)
    assert len(key) >= 32
    assert key_path.read_text().strip().encode() == key
    assert mode(key_path) == 0o600
    assert await db.run(meta_key) is None
    assert await link_key(db, settings) == key  # the next start signs with the same key


async def test_a_key_the_database_kept_moves_into_the_file_so_sent_links_stay_valid(
    db: Database, settings: Settings, key_path: Path
) -> None:
    await db.run(put_legacy_key)
    assert await link_key(db, settings) == LEGACY_KEY.encode()
    assert key_path.read_text().strip() == LEGACY_KEY
    assert mode(key_path) == 0o600
    assert await db.run(meta_key) is None  # gone from the database
    assert await link_key(db, settings) == LEGACY_KEY.encode()


async def test_the_database_keeps_its_key_when_the_file_cannot_be_written(
    db: Database, settings: Settings, key_path: Path
) -> None:
    await db.run(put_legacy_key)
    key_path.parent.write_text("a file where the key's directory should be")
    with pytest.raises(ConfigError, match="secret_key_file"):
        await link_key(db, settings)
    assert await db.run(meta_key) == LEGACY_KEY  # rolled back: not lost


async def test_a_configured_secret_key_writes_no_file(
    make_settings: Callable[..., Settings], settings: Settings, key_path: Path, db: Database
) -> None:
    configured = make_settings(security_secret_key="configured-key-0123456789")
    assert await link_key(db, configured) == b"configured-key-0123456789"
    assert not key_path.exists()


def test_a_key_file_others_may_read_is_made_private(key_path: Path) -> None:
    from oncall.notify.keyfile import load_or_create

    key_path.parent.mkdir()
    key_path.write_text("an-existing-key-0123456789abcdef\n")
    key_path.chmod(0o644)
    assert load_or_create(str(key_path)) == b"an-existing-key-0123456789abcdef"
    assert mode(key_path) == 0o600


def test_a_key_file_that_cannot_be_made_private_is_refused_with_a_clear_message(
    key_path: Path, monkeypatch: Any
) -> None:
    from oncall.notify import keyfile

    key_path.parent.mkdir()
    key_path.write_text("an-existing-key-0123456789abcdef\n")
    key_path.chmod(0o640)

    def not_allowed(*_args: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", not_allowed)
    with pytest.raises(ConfigError) as caught:
        keyfile.load_or_create(str(key_path))
    [problem] = caught.value.problems
    assert str(key_path) in problem and "0640" in problem and "chmod 600" in problem


def test_a_key_file_with_too_short_a_key_is_refused(key_path: Path) -> None:
    from oncall.notify.keyfile import load_or_create

    key_path.parent.mkdir()
    key_path.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_or_create(str(key_path))
    assert key_path.read_text() == "short\n"  # left as it is, for its owner to see


def test_creating_the_key_never_replaces_an_existing_file(key_path: Path) -> None:
    from oncall.secretfile import create_private

    assert create_private(str(key_path), "first-key-0123456789abcdef\n")
    assert not create_private(str(key_path), "second-key-0123456789abcdef\n")
    assert key_path.read_text() == "first-key-0123456789abcdef\n"
    assert [p.name for p in key_path.parent.iterdir()] == ["secret.key"]  # no temporary left
