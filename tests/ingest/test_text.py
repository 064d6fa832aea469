"""Text PostgreSQL cannot store (NUL, lone surrogates) is replaced where it enters: the pure
function, both parsers, and whole deliveries through the HTTP API on both backends."""

from __future__ import annotations

import json
from typing import Any

from oncall.db import jsoncodec
from oncall.ingest.alertmanager import parse_webhook
from oncall.ingest.events_v2 import parse_event
from oncall.ingest.text import REPLACEMENT, storable, storable_map
from oncall.web.keys import RUNTIME
from tests.support.db import count_rows
from tests.support.factories import ALICE_TOKEN, AM_AUTH, DIRECTORY_YAML, make_alert, make_webhook

URL = "/api/v1/integrations/alertmanager"
USER = {"Authorization": f"Bearer {ALICE_TOKEN}"}
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
BAD = "a\x00b\ud800c\udfffd"  # NUL, a lone high and a lone low surrogate
CLEAN = f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}d"


def test_nul_and_lone_surrogates_become_the_replacement_character():
    assert storable(BAD) == CLEAN
    assert storable("\x00") == REPLACEMENT
    assert storable("ok \U0001f525 ü") == "ok \U0001f525 ü"  # a surrogate pair is not lone
    plain = "DiskFull"
    assert storable(plain) is plain  # the common case copies nothing
    labels = {"alertname": "DiskFull"}
    assert storable_map(labels) is labels
    assert storable_map({"k\x00": BAD}) == {f"k{REPLACEMENT}": CLEAN}


def test_the_webhook_parser_cleans_every_kept_string():
    alert = make_alert("db1")
    alert["labels"]["instance"] = BAD
    alert["labels"]["bad\x00key"] = "x"
    alert["annotations"]["summary"] = BAD
    alert["generatorURL"] = BAD
    body = make_webhook([alert])
    body["commonAnnotations"] = {"summary": BAD}
    body["groupKey"] = BAD
    group = parse_webhook(body)
    [parsed] = group.alerts
    assert parsed.labels["instance"] == CLEAN and f"bad{REPLACEMENT}key" in parsed.labels
    assert parsed.annotations["summary"] == CLEAN and parsed.generator_url == CLEAN
    assert group.group_key == CLEAN and group.title() == CLEAN


def test_the_events_parser_cleans_every_kept_string():
    event = parse_event(event_body())
    assert event.dedup_key == CLEAN and event.summary == CLEAN
    assert event.annotations["summary"] == CLEAN and event.labels["source"] == CLEAN


def test_a_lone_surrogate_escape_is_json():
    assert jsoncodec.loads(b'{"a": "\\ud800"}') == {"a": "\ud800"}


def event_body() -> dict[str, Any]:
    return {
        "routing_key": EV_TOKEN,
        "event_action": "trigger",
        "dedup_key": BAD,
        "payload": {"summary": BAD, "source": BAD, "severity": "critical"},
    }


async def test_a_group_with_a_nul_byte_is_stored_whole(client):
    # The finding as seen: asyncpg refused the group's insert, 500 on every retry.
    bad = make_alert("db1")
    bad["annotations"]["description"] = "read \x00 from /dev/sda"
    response = await client.post(URL, json=make_webhook([bad, make_alert("db2")]), headers=AM_AUTH)
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=USER)
    stored = {a["fingerprint"]: a for a in (await response.json())["alerts"]}
    assert set(stored) == {"fp-DiskFull-db1", "fp-DiskFull-db2"}
    description = stored["fp-DiskFull-db1"]["annotations"]["description"]
    assert description == f"read {REPLACEMENT} from /dev/sda"


async def test_a_group_with_nul_and_lone_surrogates_is_stored_whole(client):
    bad = make_alert("db1")
    bad["labels"]["instance"] = "db1\x00"
    bad["labels"]["k\x00"] = "v"
    bad["annotations"]["summary"] = "Disk full \ud800 on db1\x00"
    body = make_webhook([bad, make_alert("db2"), make_alert("db3")])
    body["commonAnnotations"] = {"summary": BAD}
    # The standard module writes NUL and the surrogate as \u escapes, as a JSON sender would.
    response = await client.post(
        URL, data=json.dumps(body), headers={**AM_AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    [incident_id] = (await response.json())["incidents"]
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=USER)
    stored = await response.json()
    assert stored["title"] == CLEAN
    by_fingerprint = {a["fingerprint"]: a for a in stored["alerts"]}
    assert set(by_fingerprint) == {"fp-DiskFull-db1", "fp-DiskFull-db2", "fp-DiskFull-db3"}
    cleaned = by_fingerprint["fp-DiskFull-db1"]
    assert cleaned["labels"]["instance"] == f"db1{REPLACEMENT}"
    assert cleaned["labels"][f"k{REPLACEMENT}"] == "v"
    assert cleaned["annotations"]["summary"] == f"Disk full {REPLACEMENT} on db1{REPLACEMENT}"
    assert by_fingerprint["fp-DiskFull-db2"]["labels"]["instance"] == "db2"
    counts = await client.app[RUNTIME].db.run(count_rows)
    assert counts["incidents"] == 1 and counts["alerts"] == 3


async def test_an_event_with_nul_and_lone_surrogates_is_stored(make_client):
    directory = DIRECTORY_YAML.replace(
        "integrations:\n",
        f'integrations:\n  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}\n',
    )
    client = await make_client(directory=directory)
    response = await client.post("/v2/enqueue", data=json.dumps(event_body()))
    assert response.status == 202, await response.text()
    assert (await response.json())["dedup_key"] == CLEAN
    response = await client.get("/api/v1/incidents", headers=USER)
    [stored] = (await response.json())["incidents"]
    assert stored["title"] == CLEAN and stored["dedup_key"] == CLEAN
