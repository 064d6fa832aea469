"""Leadership on a PostgreSQL cluster of the test's own (so one instance can be cut off),
and the one-process lock on SQLite, with a role that records what it was told."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from oncall.cluster import sole
from oncall.cluster.leadership import LeaseLeadership, SoleLeadership, leadership_of
from oncall.db.migrate import upgrade
from oncall.errors import ConfigError
from oncall.metrics import Metrics
from oncall.settings import Settings, load_settings
from tests.support.cluster import ClusterDatabase
from tests.support.postgres_cluster import PostgresCluster
from tests.support.waiting import eventually

FAILOVER = "2s"


def now(check: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """Return `check` as the asynchronous condition `eventually` polls."""

    async def condition() -> Any:
        return check()

    return condition


class Recorder:
    """A role that records when it was told to lead and to follow (time.monotonic())."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    async def lead(self) -> None:
        self.events.append(("lead", time.monotonic()))

    def follow(self) -> None:
        self.events.append(("follow", time.monotonic()))

    def first(self, what: str) -> float | None:
        return next((t for kind, t in self.events if kind == what), None)


@pytest.fixture(scope="module")
def pg() -> Iterator[ClusterDatabase]:
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
        db = ClusterDatabase(cluster, ["a", "b"])
        asyncio.run(db.create())
        yield db
    finally:
        cluster.destroy()


@pytest.fixture
async def schema(pg: ClusterDatabase) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(pg.url())
    try:
        await upgrade(engine, name)
    finally:
        await engine.dispose()
    yield name


def settings_of(url: str, schema: str, instance: str, tmp_path: Path) -> Settings:
    empty = tmp_path / "settings.ini"
    empty.write_text("")
    return load_settings(
        {
            "ONCALL_SETTINGS": str(empty),
            "ONCALL_DATABASE_URL": url,
            "ONCALL_DATABASE_SCHEMA": schema,
            "ONCALL_CLUSTER_FAILOVER": FAILOVER,
            "ONCALL_CLUSTER_INSTANCE": instance,
        }
    )


def lease_of(pg: ClusterDatabase, schema: str, name: str, tmp_path: Path) -> LeaseLeadership:
    leadership = leadership_of(settings_of(pg.url(name), schema, name, tmp_path), Metrics())
    assert isinstance(leadership, LeaseLeadership)
    return leadership


async def test_one_leads_the_other_follows_and_takes_over_when_it_stops(
    pg: ClusterDatabase, schema: str, tmp_path: Path
) -> None:
    a, b = lease_of(pg, schema, "a", tmp_path), lease_of(pg, schema, "b", tmp_path)
    role_a, role_b = Recorder(), Recorder()
    try:
        await a.start(role_a)
        await b.start(role_b)
        assert a.holds() and not b.holds()
        assert [kind for kind, _ in role_a.events] == ["lead"] and role_b.events == []
        seen = b.status()
        assert (seen.role, seen.leader, seen.leader_id, seen.term) == ("follower", "a", a.id, 1)
        assert a.status().role == "leader" and a.metrics.cluster_leader._value.get() == 1

        await a.stop()  # hands the lease back: b takes it at its next try
        assert not a.holds() and [kind for kind, _ in role_a.events] == ["lead", "follow"]
        await eventually(now(b.holds), what="b leading")
        assert b.status().term == 2 and b.status().leader == "b"
        assert b.metrics.value("oncall_cluster_elections") == 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_leader_cut_off_from_the_database_follows_before_another_leads(
    pg: ClusterDatabase, schema: str, tmp_path: Path
) -> None:
    a, b = lease_of(pg, schema, "a", tmp_path), lease_of(pg, schema, "b", tmp_path)
    role_a, role_b = Recorder(), Recorder()
    try:
        await a.start(role_a)
        await b.start(role_b)
        assert a.holds()
        cut = time.monotonic()
        await pg.cut_off("a")
        await eventually(now(lambda: role_b.first("lead")), what="b leading", timeout=30)
        followed, led = role_a.first("follow"), role_b.first("lead")
        assert followed is not None and led is not None
        # a stopped within about one renewal of the cut, and before b took over, which it
        # could only once a's lease expired.
        assert followed < led
        assert followed - cut < 2 * 0.4 + 1.0
        assert not a.holds() and a.status().role == "follower"
        assert a.metrics.value("oncall_cluster_step_downs", reason="lost") == 1
        assert b.status().term == 2

        await pg.let_in("a")
        await eventually(now(lambda: a.status().leader == "b"), what="a seeing b lead")
        assert not a.holds() and b.holds()
    finally:
        await pg.let_in("a")
        await a.stop()
        await b.stop()


async def test_instances_starting_together_migrate_one_at_a_time(pg: ClusterDatabase) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    engines = [create_async_engine(pg.url(who)) for who in ("a", "b", "a", "b")]
    try:
        await asyncio.gather(*(upgrade(engine, name) for engine in engines))
        async with engines[0].connect() as conn:
            version = await conn.scalar(text(f'SELECT version_num FROM "{name}".alembic_version'))
            rows = await conn.scalar(text(f'SELECT count(*) FROM "{name}".leadership'))
        assert version == "0016" and rows == 1
    finally:
        for engine in engines:
            await engine.dispose()


def sqlite_settings(tmp_path: Path, **extra: str) -> Settings:
    empty = tmp_path / "settings.ini"
    empty.write_text("")
    return load_settings(
        {
            "ONCALL_SETTINGS": str(empty),
            "ONCALL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/oncall.db",
            **extra,
        }
    )


async def test_a_second_process_on_one_sqlite_database_is_refused(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    first = leadership_of(settings, Metrics())
    second = leadership_of(settings, Metrics())
    assert isinstance(first, SoleLeadership) and isinstance(second, SoleLeadership)
    path = str(tmp_path / "oncall.db")
    assert sole.holder(path) is None
    first.claim()
    try:
        held = sole.holder(path)
        assert held is not None and "pid" in held
        with pytest.raises(ConfigError) as refused:
            second.claim()
        (problem,) = refused.value.problems
        assert "another oncall process uses this SQLite database" in problem
        assert held in problem and "move-database" in problem
    finally:
        first.close()
    assert sole.holder(path) is None
    second.claim()  # free once the first let go (as it does when its process dies)
    second.close()


async def test_the_only_process_on_sqlite_leads_from_start_to_stop(tmp_path: Path) -> None:
    leadership = leadership_of(sqlite_settings(tmp_path), Metrics())
    role = Recorder()
    await leadership.start(role)
    assert leadership.holds() and leadership.status().role == "leader"
    await leadership.stop()
    assert not leadership.holds() and [kind for kind, _ in role.events] == ["lead", "follow"]


def test_cluster_settings_on_sqlite_are_refused_naming_each_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        sqlite_settings(tmp_path, ONCALL_CLUSTER_FAILOVER="5s", ONCALL_CLUSTER_INSTANCE="a")
    problems = refused.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("[cluster] failover (from ONCALL_CLUSTER_FAILOVER)")
    assert problems[1].startswith("[cluster] instance (from ONCALL_CLUSTER_INSTANCE)")
    assert all("clustering needs PostgreSQL" in p for p in problems)


@pytest.mark.parametrize(
    ("key", "value"),
    [("FAILOVER", "0s"), ("FAILOVER", "11m"), ("FAILOVER", "ten"), ("INSTANCE", "a b")],
)
def test_bad_cluster_settings_are_refused(tmp_path: Path, key: str, value: str) -> None:
    empty = tmp_path / "settings.ini"
    empty.write_text("")
    with pytest.raises(ConfigError) as refused:
        load_settings(
            {
                "ONCALL_SETTINGS": str(empty),
                "ONCALL_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1/x",
                f"ONCALL_CLUSTER_{key}": value,
            }
        )
    assert refused.value.problems[0].startswith(f"[cluster] {key.lower()} ")
