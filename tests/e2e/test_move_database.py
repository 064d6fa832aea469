"""Growing out of SQLite, on real processes: a database moved by `python app.py
move-database` carries its pending escalation steps and overrides, and the service started
on PostgreSQL fires the steps at their due time; `python app.py backup` run while webhooks
arrive gives a database that opens and passes PRAGMA integrity_check."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import select

from oncall.clock import isoformat
from oncall.db.engine import Database, make_engine
from oncall.db.models import escalation_jobs
from oncall.settings import DatabaseSettings
from tests.e2e.test_action_restarts import levels_fired
from tests.incidents.test_actions import ALICE, paged, pages_reach
from tests.ingest.test_events_v2 import EV_TOKEN
from tests.support.db import POSTGRES_URL, drop_schema
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    AM_TOKEN,
    BOB_TOKEN,
    make_alert,
    make_webhook,
)
from tests.support.process import ROOT, ServiceProcess
from tests.support.redis_server import REDIS_HOST, REDIS_PORT, delete_keys
from tests.support.waiting import eventually

AM_URL = "/api/v1/integrations/alertmanager"
INCIDENTS = 4
# Level 1's wait: long enough to stop the service, move the database and start the service
# on PostgreSQL before level 2 falls due.
LEVEL_2_AFTER = 40
LATE = timedelta(seconds=1)  # the most a step may fire after its due time


def directory(receiver: Any) -> str:
    """Level 1 pages alice; level 2 whoever is on call for `primary` (bob, but for an
    override); each user's webhook is the receiver at /hook/NAME."""
    users = "\n".join(
        f'  - {{name: {name}, {extra}contacts: [{{type: webhook, url: "{receiver.url}/{name}"}}]}}'
        for name, extra in (
            ("alice", f'role: admin, api_token: "{ALICE_TOKEN}", '),
            ("bob", f'api_token: "{BOB_TOKEN}", '),
            ("carol", ""),
        )
    )
    return f"""
integrations:
  - {{name: prometheus, type: alertmanager, token: "{AM_TOKEN}", rate_limit: 100000/1m}}
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}", rate_limit: 100000/1m}}
users:
{users}
schedules:
  - name: primary
    time_zone: UTC
    layers:
      - {{members: [bob], rotation: 1d, handoff: "2026-01-01 00:00"}}
policies:
  - name: main
    repeat: 0
    levels:
      - {{notify: ["user:alice"], escalate_after: {LEVEL_2_AFTER}s}}
      - {{notify: ["schedule:primary"], escalate_after: 1h}}
routes:
  - {{policy: main}}
"""


async def app_py(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `python app.py ARGS` to its end; return its exit code, output and errors."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "app.py",
        *args,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def on_call(session: aiohttp.ClientSession) -> str:
    async with session.get("/api/v1/oncall", headers=ALICE) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["schedules"]["primary"])


async def level_2_jobs(db: Database) -> list[Any]:
    def read(conn: Any) -> list[Any]:
        query = select(
            escalation_jobs.c.incident_id,
            escalation_jobs.c.state,
            escalation_jobs.c.due_at,
            escalation_jobs.c.fired_at,
        ).where(escalation_jobs.c.level == 2)
        return list(conn.execute(query.order_by(escalation_jobs.c.incident_id)).all())

    return await db.run(read)


async def test_the_service_on_the_moved_database_fires_the_pending_steps_on_time(
    tmp_path, key_prefix, receiver
):
    path = tmp_path / "oncall.yaml"
    path.write_text(directory(receiver))
    schema = f"t_{uuid.uuid4().hex[:16]}"
    common = {
        "ONCALL_SETTINGS": "/dev/null",
        "ONCALL_REDIS_HOST": REDIS_HOST,
        "ONCALL_REDIS_PORT": str(REDIS_PORT),
        "ONCALL_REDIS_KEY_PREFIX": key_prefix,
        "ONCALL_DIRECTORY_PATH": str(path),
    }
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path}/oncall.db"
    on_sqlite = ServiceProcess({**common, "ONCALL_DATABASE_URL": sqlite_url}, tmp_path / "a.log")
    pg_env = {**common, "ONCALL_DATABASE_URL": POSTGRES_URL, "ONCALL_DATABASE_SCHEMA": schema}
    on_postgres = ServiceProcess(pg_env, tmp_path / "b.log")
    db = Database(make_engine(DatabaseSettings(POSTGRES_URL, schema)))
    try:
        await on_sqlite.start()
        async with aiohttp.ClientSession(base_url=on_sqlite.url) as session:
            now = datetime.now(UTC)
            override = {
                "user": "carol",
                "start": isoformat(now - timedelta(minutes=1)),
                "end": isoformat(now + timedelta(hours=1)),
            }
            url = "/api/v1/schedules/primary/overrides"
            async with session.post(url, json=override, headers=ALICE) as response:
                assert response.status == 201, await response.text()
            assert await on_call(session) == "carol"
            for n in range(INCIDENTS):
                body = make_webhook([make_alert("db1", alertname=f"A{n}")], alertname=f"A{n}")
                async with session.post(AM_URL, json=body, headers=AM_AUTH) as response:
                    assert response.status == 200, await response.text()
        await eventually(pages_reach(receiver, ["alice"] * INCIDENTS), what="level 1")
        move_args = ("move-database", "--to", POSTGRES_URL, "--schema", schema)
        sqlite_env = {**common, "ONCALL_DATABASE_URL": sqlite_url}
        code, out, err = await app_py(*move_args, env=sqlite_env)
        assert (code, out) == (1, ""), err
        pid = on_sqlite.proc.pid if on_sqlite.proc else None
        assert f"is in use by a running service (pid {pid} on " in err
        assert on_sqlite.stop() == 0
        with sqlite3.connect(f"{tmp_path}/oncall.db") as conn:
            pending = conn.execute(
                "SELECT count(*) FROM escalation_jobs WHERE level = 2 AND state = 'scheduled'"
            ).fetchone()
        assert pending == (INCIDENTS,)
        delete_keys(key_prefix)  # Redis forgets every timer: only the database knows them

        moving = time.monotonic()
        code, out, err = await app_py(*move_args, env=sqlite_env)
        moved_in = time.monotonic() - moving
        assert code == 0, err
        assert f"[database]\nurl = {POSTGRES_URL}\nschema = {schema}\n" in out
        for table in ("incidents", "escalation_jobs", "schedule_overrides", "notifications"):
            assert f"\n{table} " in out

        await on_postgres.start()
        started = datetime.now(UTC)
        jobs = await level_2_jobs(db)
        assert [state for *_, state, _due, _fired in jobs] == ["scheduled"] * INCIDENTS
        first_due = min(job.due_at for job in jobs)
        assert started < first_due, f"the service on PostgreSQL was up {started - first_due} late"

        await eventually(
            pages_reach(receiver, ["alice"] * INCIDENTS + ["carol"] * INCIDENTS),
            timeout=LEVEL_2_AFTER + 15,
            what="level 2",
        )
        async with aiohttp.ClientSession(base_url=on_postgres.url) as session:
            assert await on_call(session) == "carol"  # the override, in effect on PostgreSQL

        async def all_fired() -> list[Any]:
            found = await level_2_jobs(db)
            return found if all(job.state == "fired" for job in found) else []

        jobs = await eventually(all_fired, what="every level-2 job fired")
        lateness = [job.fired_at - job.due_at for job in jobs]
        print(
            f"\nmove-database took {moved_in:.1f} s; the service on PostgreSQL was up "
            f"{(first_due - started).total_seconds():.1f} s before level 2 fell due; it fired "
            f"{min(lateness).total_seconds():.3f}..{max(lateness).total_seconds():.3f} s "
            "after its due time"
        )
        assert all(timedelta(0) <= late < LATE for late in lateness), lateness
        for incident_id, *_ in jobs:
            assert (await levels_fired(db, incident_id))[("main", 2)] == 1
        assert paged(receiver).count("carol") == INCIDENTS
    finally:
        on_sqlite.stop()
        on_postgres.stop()
        await db.close()
        await asyncio.to_thread(drop_schema, schema)


def events_v2(n: int) -> dict[str, Any]:
    return {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": f"ev-{n}",
        "payload": {"summary": f"Event {n}", "source": "db1", "severity": "critical"},
    }


async def test_a_backup_while_webhooks_arrive_opens_and_passes_the_integrity_check(
    sqlite_service, tmp_path, receiver
):
    service = await sqlite_service(directory(receiver))
    sent = itertools.count()
    answered: list[tuple[float, int]] = []  # (when, status) of every post
    stop = asyncio.Event()

    async def stream(session: aiohttp.ClientSession) -> None:
        """Post new alerts, in turn Alertmanager's and Events v2, until told to stop."""
        while not stop.is_set():
            n = next(sent)
            if n % 2:
                body = make_webhook([make_alert(f"h{n}", alertname=f"B{n}")], alertname=f"B{n}")
                request = session.post(AM_URL, json=body, headers=AM_AUTH)
            else:
                request = session.post("/v2/enqueue", json=events_v2(n))
            async with request as response:
                answered.append((time.monotonic(), response.status))

    async with aiohttp.ClientSession(base_url=service.url) as session:
        senders = [asyncio.create_task(stream(session)) for _ in range(4)]

        async def warmed_up() -> bool:
            return len(answered) >= 200

        await eventually(warmed_up, what="200 posts")
        copy = tmp_path / "backup.db"
        began = time.monotonic()
        code, out, err = await app_py(
            "backup",
            str(copy),
            env={
                "ONCALL_SETTINGS": "/dev/null",
                "ONCALL_DATABASE_URL": service.env["ONCALL_DATABASE_URL"],
            },
        )
        ended = time.monotonic()
        stop.set()
        await asyncio.gather(*senders)

    assert code == 0, err
    assert "integrity_check: ok" in out and ", 0 restarts;" in out
    during = [status for at, status in answered if began <= at <= ended]
    assert len(during) > 20, "the service went on taking webhooks during the backup"
    assert set(status for _, status in answered) <= {200, 202}
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        copied = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    with sqlite3.connect(f"file:{tmp_path}/oncall.db?mode=ro", uri=True) as conn:
        live = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    # Each post opened an incident of its own: those answered before the backup began are
    # all in the copy, those after it are not all there yet.
    opened_before = sum(1 for at, _ in answered if at < began)
    print(
        f"\n{out.strip()}\n{len(during)} webhooks answered during the backup; "
        f"{copied} incidents in the copy: {opened_before} opened before it began, {live} now"
    )
    assert 0 < opened_before <= copied <= live
