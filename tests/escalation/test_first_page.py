"""The first page of a new incident is built from what its opening transaction wrote
(incidents.lifecycle.Opened) instead of reading it back: it must equal the page read back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection

from oncall.db.models import escalation_jobs, incidents
from oncall.directory.parse import parse_directory
from oncall.ingest import store
from oncall.ingest.alertmanager import parse_webhook
from oncall.ingest.context import AlertContext
from oncall.notify import store as store_notify
from tests.support.factories import T0, fast_directory, make_alert, make_webhook
from tests.support.wiring import services

# Written as Alertmanager sends them: duplicates, an alert without a link, more than five.
URLS = [
    "",
    "http://p/1",
    "http://p/1",
    "http://p/2",
    "http://p/3",
    "http://p/2",
    "http://p/4",
    "http://p/5",
    "http://p/6",
    "http://p/7",
]

CONTEXT = AlertContext(
    {"free": "2%"},
    ({"href": "https://r.example.com/disk", "text": "Runbook"},),
    ({"src": "https://g.example.com/p.png", "href": "", "alt": "Disk"},),
)


@pytest.fixture
def conn(sqlite_conn: Connection) -> Connection:
    return sqlite_conn


def group(name: str, common: dict[str, str]) -> Any:
    alerts = [make_alert(f"host-{i}", alertname=name) for i in range(len(URLS))]
    for alert, url in zip(alerts, URLS, strict=True):
        alert["generatorURL"] = url
    body = make_webhook(alerts, alertname=name)
    body["commonAnnotations"] = common
    parsed = parse_webhook(body)
    # The first alert carries a context, as an Events v2 trigger's does.
    first = dataclasses.replace(parsed.alerts[0], context=CONTEXT)
    return dataclasses.replace(parsed, alerts=(first, *parsed.alerts[1:]))


@pytest.mark.parametrize(
    "common",
    [{}, {"summary": "Disks are filling up", "team": "ops"}],
    ids=["no common summary", "common summary"],
)
def test_first_page_equals_the_page_read_back(conn: Connection, common: dict[str, str]) -> None:
    directory = parse_directory(fast_directory(), {})
    runtime = services(directory)
    group_of = group("DiskFull", common)
    result = store.ingest_group(
        conn,
        "prometheus",
        group_of,
        directory,
        T0,
        runtime.incidents,
        runtime.escalation,
    )
    [claimed] = result.followups.pages
    [incident_id] = result.opened

    stored = conn.execute(select(incidents).where(incidents.c.id == incident_id)).one()
    urls, annotations, context = store_notify._page_sources(conn, stored)
    assert (
        claimed.source_urls
        == urls
        == ("http://p/1", "http://p/2", "http://p/3", "http://p/4", "http://p/5")
    )
    assert claimed.annotations == annotations
    assert claimed.context == context == group_of.alerts[0].context
    if not common:  # the first alert's annotations stand in for the missing summary
        assert annotations["summary"] == "DiskFull on host-0"
    # The row the page carries is the incident as inserted, which is as stored: the INSERT
    # already pointed it past its first step (no UPDATE claims that step afterwards).
    assert claimed.incident._asdict() == stored._asdict()
    assert (stored.next_level, stored.next_repeat) == (2, 0)


def test_first_step_writes_each_job_row_once(conn: Connection) -> None:
    directory = parse_directory(fast_directory(), {})
    runtime = services(directory)
    result = store.ingest_group(
        conn,
        "prometheus",
        group("CpuHot", {}),
        directory,
        T0,
        runtime.incidents,
        runtime.escalation,
    )
    [incident_id] = result.opened
    jobs = conn.execute(
        select(escalation_jobs.c.id, escalation_jobs.c.state)
        .where(escalation_jobs.c.incident_id == incident_id)
        .order_by(escalation_jobs.c.level)
    ).all()
    assert [tuple(j) for j in jobs] == [
        (f"incident:{incident_id}:level:1:repeat:0", "fired"),
        (f"incident:{incident_id}:level:2:repeat:0", "scheduled"),
    ]
    assert [t.job_id for t in result.followups.jobs] == [jobs[1].id]
