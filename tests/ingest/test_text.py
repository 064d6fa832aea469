"""Text PostgreSQL cannot store (NUL, lone surrogates) is replaced, and control characters
normalised, where it enters: the pure functions, both parsers, and whole deliveries through
the HTTP API on both backends."""

from __future__ import annotations

import json
from typing import Any

from oncall.db import jsoncodec
from oncall.ingest.alertmanager import parse_webhook
from oncall.ingest.events_v2 import parse_event
from oncall.ingest.text import REPLACEMENT, clean_map, multiline, one_line, storable
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
    assert clean_map(labels, one_line) is labels
    assert clean_map({"k\x00": BAD}, one_line) == {f"k{REPLACEMENT}": CLEAN}
    assert one_line(BAD) == multiline(BAD) == CLEAN


# Every control character: C0 (NUL aside), DEL, C1, and the line and paragraph separators.
CONTROLS = [chr(c) for c in [*range(1, 32), *range(127, 160)]] + ["\u2028", "\u2029"]
BREAKS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029"  # what splitlines() breaks at


def test_a_one_line_value_has_no_control_character_left():
    for control in CONTROLS:
        cleaned = one_line(f"a{control}b")
        # A line break or tab is a space (the words stay apart); any other is dropped.
        assert cleaned == ("a b" if control in BREAKS else "ab"), repr(control)
    assert one_line("critical\r\n\r\nX-Injected: yes") == "critical X-Injected: yes"
    assert one_line("critical\n").splitlines() == ["critical "]
    plain = "Disk full on db1 \U0001f525 ü"
    assert one_line(plain) is plain  # the common case copies nothing
    nbsp = "a\u00a0b"  # not printable, but not a control character either
    assert one_line(nbsp) == nbsp


def test_a_multiline_value_keeps_newlines_and_tabs_only():
    assert multiline("line 1\r\nline 2\rline 3\u2028line 4\tend") == (
        "line 1\nline 2\nline 3\nline 4\tend"
    )
    for control in CONTROLS:
        cleaned = multiline(f"a{control}b")
        if control in "\t\n":
            assert cleaned == f"a{control}b"
        elif control in BREAKS:
            assert cleaned == "a\nb", repr(control)  # another line break is a newline
        else:
            assert cleaned == "ab", repr(control)
    description = "Free space:\n\tdb1\t2%"
    assert multiline(description) == description


def test_the_webhook_parser_puts_labels_on_one_line_and_keeps_annotation_lines():
    alert = make_alert("db1\r\nX-Injected: yes")
    alert["labels"]["severity"] = "critical\n"
    alert["labels"]["bad\nkey"] = "\x1b[31mred\x07"
    alert["annotations"]["description"] = "line 1\r\nline 2\x07\tend"
    alert["generatorURL"] = "http://prometheus:9090/graph\n<script>"
    body = make_webhook([alert])
    body["commonLabels"]["severity"] = "critical\nX-Injected: yes"
    body["commonAnnotations"] = {"summary": "Disk\x1b full\u2028second line"}
    body["externalURL"] = "http://alertmanager:9093\r\n"
    group = parse_webhook(body)
    [parsed] = group.alerts
    assert parsed.labels["instance"] == "db1 X-Injected: yes"
    assert parsed.labels["bad key"] == "[31mred"
    assert parsed.annotations["description"] == "line 1\nline 2\tend"
    assert parsed.generator_url == "http://prometheus:9090/graph <script>"
    assert group.external_url == "http://alertmanager:9093 "
    assert group.common_annotations["summary"] == "Disk full\nsecond line"
    assert group.title() == "Disk full"
    assert group.severity() == "critical x-injected: yes"


def test_a_fallback_fingerprint_is_computed_from_the_normalised_labels():
    # The same alert sent with CR LF and with LF is one alert, fingerprinted alike.
    alerts = [make_alert("db1\r\nx"), make_alert("db1\nx"), make_alert("db1 x")]
    for alert in alerts:
        alert["fingerprint"] = ""  # a sender that leaves it to us
    fingerprints = {parse_webhook(make_webhook([a])).alerts[0].fingerprint for a in alerts}
    assert len(fingerprints) == 1


def test_the_events_parser_puts_severity_source_and_title_on_one_line():
    body = event_body()
    body["dedup_key"] = "disk-db1"
    body["payload"] = {
        "summary": "Disk full\r\non db1\x07",
        "source": "db1\nX-Injected: yes",
        "severity": "critical\r\n",
        "component": "pg\x85sql",
    }
    event = parse_event(body)
    assert event.severity == "critical" and event.labels["severity"] == "critical"
    assert event.labels["source"] == "db1 X-Injected: yes"
    assert event.labels["component"] == "pg sql"
    assert event.annotations["summary"] == "Disk full\non db1"


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
