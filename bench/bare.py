"""The bare write path: the issue's reference for what the dedup transaction alone costs.

`python bench/bare.py PORT DB_PATH`. An aiohttp server whose handler parses an Alertmanager
webhook and runs the dedup transaction with the standard `sqlite3` module, one transaction
per request in one worker thread, WAL and `synchronous=NORMAL`: find the group's open
incident, insert it if new, upsert the alerts by fingerprint and startsAt, resolve the
incident when none is firing, write the timeline rows. No authentication, validation,
routing, escalation or pages: the floor under the service's write path. The ingest
benchmark drives it with the same client and payloads in the same run, so that the
service's latency can be compared with it on the same machine ("within 2x of the bare
write path").
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY, dedup_key TEXT NOT NULL, status TEXT NOT NULL,
    title TEXT NOT NULL, labels TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, resolved_at TEXT);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (dedup_key, status);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL REFERENCES incidents (id),
    fingerprint TEXT NOT NULL, starts_at TEXT NOT NULL, status TEXT NOT NULL,
    labels TEXT NOT NULL, annotations TEXT NOT NULL, ends_at TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (fingerprint, starts_at));
CREATE INDEX IF NOT EXISTS alerts_incident ON alerts (incident_id, status);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at TEXT NOT NULL, type TEXT NOT NULL, detail TEXT NOT NULL);
"""

UPSERT_ALERT = """
INSERT INTO alerts (incident_id, fingerprint, starts_at, status, labels, annotations,
                    ends_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
    status = excluded.status, ends_at = excluded.ends_at, updated_at = excluded.updated_at
"""


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


def deliver(conn: sqlite3.Connection, body: dict[str, Any]) -> int:
    """Run one webhook's dedup transaction; return its incident's id (0 when a group
    that has no open incident arrives already resolved)."""
    now = datetime.now(UTC).isoformat()
    alerts = body["alerts"]
    firing = [a for a in alerts if a["status"] == "firing"]
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT id FROM incidents WHERE dedup_key = ? AND status != ?",
            (body["groupKey"], "resolved"),
        ).fetchone()
        events = []
        if row is None:
            if not firing:
                conn.execute("COMMIT")
                return 0
            incident_id = conn.execute(
                "INSERT INTO incidents (dedup_key, status, title, labels, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    body["groupKey"],
                    "triggered",
                    body["commonLabels"].get("alertname", ""),
                    orjson.dumps(body["commonLabels"]).decode(),
                    now,
                    now,
                ),
            ).lastrowid
            events.append((incident_id, now, "incident.triggered", "{}"))
        else:
            incident_id = row[0]
        conn.executemany(
            UPSERT_ALERT,
            [
                (
                    incident_id,
                    a["fingerprint"],
                    a["startsAt"],
                    a["status"],
                    orjson.dumps(a["labels"]).decode(),
                    orjson.dumps(a.get("annotations", {})).decode(),
                    a.get("endsAt"),
                    now,
                    now,
                )
                for a in alerts
            ],
        )
        events.append(
            (
                incident_id,
                now,
                "alerts.received",
                orjson.dumps({"count": len(alerts), "firing": len(firing)}).decode(),
            )
        )
        still_firing = conn.execute(
            "SELECT count(*) FROM alerts WHERE incident_id = ? AND status = ?",
            (incident_id, "firing"),
        ).fetchone()[0]
        if not still_firing:
            conn.execute(
                "UPDATE incidents SET status = ?, updated_at = ?, resolved_at = ? WHERE id = ?",
                ("resolved", now, now, incident_id),
            )
            events.append((incident_id, now, "incident.resolved", "{}"))
        conn.executemany(
            "INSERT INTO events (incident_id, at, type, detail) VALUES (?, ?, ?, ?)", events
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return incident_id


def main() -> None:
    conn = connect(sys.argv[2])
    worker = ThreadPoolExecutor(1)  # one thread writes, as the service's database thread

    async def hook(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        incident_id = await asyncio.get_running_loop().run_in_executor(worker, deliver, conn, body)
        return web.json_response({"incident": incident_id})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
