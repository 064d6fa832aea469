"""Searching incidents in the store: the title and the label values, ignoring case, the
wildcards of LIKE taken literally; and the counts per status of the same search. On both
databases (the app's own, through `client`)."""

from __future__ import annotations

from itertools import count
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from oncall.db.models import incidents
from oncall.incidents import store
from oncall.web.keys import RUNTIME
from tests.support.factories import T0

_keys = count()


async def add(
    client: TestClient[Any, Any], title: str, labels: dict[str, str], status: str = "triggered"
) -> int:
    """Insert an incident with `title`, `labels` and `status`; return its id."""

    def write(conn: Connection) -> int:
        row = {
            "integration": "prometheus",
            "dedup_key": f"key-{next(_keys)}",
            "status": status,
            "title": title,
            "severity": "critical",
            "labels": labels,
            "annotations": {},
            "created_at": T0,
            "updated_at": T0,
        }
        return int(conn.execute(insert(incidents).values(row)).inserted_primary_key[0])

    return await client.app[RUNTIME].db.run(write)


async def found(
    client: TestClient[Any, Any], text: str, statuses: tuple[str, ...] = ()
) -> list[int]:
    rows = await client.app[RUNTIME].db.run(store.list_incidents, statuses, 50, None, text)
    return [row.id for row in rows]


async def test_it_finds_incidents_by_title_ignoring_case(client):
    disk = await add(client, "Disk full on db1", {})
    await add(client, "CPU hot on web2", {})
    assert await found(client, "disk FULL") == [disk]


async def test_it_finds_incidents_by_a_label_value_but_not_by_a_label_name(client):
    payments = await add(client, "Latency high", {"team": "Payments", "env": "prod"})
    await add(client, "Latency high", {"team": "search", "env": "staging"})
    assert await found(client, "payments") == [payments]
    assert await found(client, "team") == []  # a name, in every row's labels


async def test_the_wildcards_of_like_are_taken_literally(client):
    percent = await add(client, "Disk 100% full", {})
    await add(client, "Disk 1000 full", {})
    underscore = await add(client, "queue", {"job": "node_exporter"})
    await add(client, "queue", {"job": "nodeXexporter"})
    backslash = await add(client, r"path C:\data", {})
    await add(client, "path C:data", {})
    assert await found(client, "0%") == [percent]
    assert await found(client, "%") == [percent]
    assert await found(client, "e_e") == [underscore]
    assert await found(client, "\\") == [backslash]


async def test_it_matches_label_values_as_written_not_as_json_text(client):
    quoted = await add(client, "x", {"summary": 'said "hi"'})
    accented = await add(client, "y", {"site": "café-nord"})
    assert await found(client, '"hi"') == [quoted]
    assert await found(client, "café") == [accented]
    assert await found(client, "u00e9") == []  # the JSON escape of é is not searched


async def test_the_search_combines_with_the_status_filter_and_the_cursor(client):
    first = await add(client, "Disk full", {}, "triggered")
    second = await add(client, "Disk full", {}, "resolved")
    third = await add(client, "Disk full", {}, "triggered")
    await add(client, "CPU hot", {}, "triggered")
    assert await found(client, "disk", ("triggered",)) == [third, first]
    rows = await client.app[RUNTIME].db.run(store.list_incidents, (), 50, third, "disk")
    assert [row.id for row in rows] == [second, first]


async def test_it_counts_each_status_of_the_incidents_a_search_finds(client):
    await add(client, "Disk full", {}, "triggered")
    await add(client, "Disk full", {}, "resolved")
    await add(client, "CPU hot", {"disk": "no"}, "acknowledged")
    await add(client, "Memory", {"device": "disk0"}, "acknowledged")
    incidents_ = client.app[RUNTIME].incidents
    assert await incidents_.count_incidents("disk") == {
        "triggered": 1,
        "acknowledged": 1,
        "resolved": 1,
    }
    assert await incidents_.count_incidents(None) == {
        "triggered": 1,
        "acknowledged": 2,
        "resolved": 1,
    }
    assert await incidents_.count_incidents("nothing like it") == {
        "triggered": 0,
        "acknowledged": 0,
        "resolved": 0,
    }
