"""Parsing Alertmanager webhooks: real payloads, timestamps, and field-named errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oncall.errors import InvalidInput
from oncall.ingest import alertmanager
from oncall.ingest.alertmanager import fallback_fingerprint, parse_timestamp, parse_webhook
from tests.support.factories import load_payload, make_alert, make_webhook


def test_a_captured_payload_parses():
    group = parse_webhook(load_payload("am_firing_two"))
    assert group.group_key == '{}:{alertname="DiskFull"}'
    assert group.receiver == "oncall"
    assert group.title() == "DiskFull"
    assert group.severity() == "critical"
    assert [a.fingerprint for a in group.alerts] == ["8d26f886e96d0e83", "e46b8136ec5e3bca"]
    assert group.alerts[0].starts_at == datetime(2026, 11, 28, 1, 30, 50, 340099, tzinfo=UTC)
    assert group.alerts[0].ends_at is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T01:30:50.340099894Z", datetime(2026, 11, 28, 1, 30, 50, 340099, tzinfo=UTC)),
        ("2026-11-28T01:30:50Z", datetime(2026, 11, 28, 1, 30, 50, tzinfo=UTC)),
        ("2026-11-28T02:30:50.5+01:00", datetime(2026, 11, 28, 1, 30, 50, 500000, tzinfo=UTC)),
        ("2026-11-27T20:30:50-05:00", datetime(2026, 11, 28, 1, 30, 50, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_timestamps(text, expected):
    assert parse_timestamp(text, "f") == expected


def test_parsed_timestamps_are_remembered_and_errors_are_not():
    alertmanager._parse_text.cache_clear()
    texts = ["2026-11-28T01:30:50Z", "2026-11-28T01:30:51Z", "2026-11-28T01:30:52Z"]
    first = [parse_timestamp(t, "f") for t in texts * 2]  # the second round is remembered
    assert first == [datetime(2026, 11, 28, 1, 30, 50 + n % 3, tzinfo=UTC) for n in range(6)]
    memo = alertmanager._parse_text.cache_info()
    assert (memo.hits, memo.currsize) == (3, 3) and memo.maxsize is not None
    for _ in range(2):  # a refusal is not remembered: it is refused again, naming its field
        with pytest.raises(InvalidInput) as refused:
            parse_timestamp("2026-13-28T01:30:50Z", f"alerts[{_}].startsAt")
        assert refused.value.field == f"alerts[{_}].startsAt"


def test_unknown_extra_fields_are_ignored():
    body = make_webhook([{**make_alert("db1"), "future": {"x": 1}}])
    body["somethingNew"] = [1, 2]
    assert len(parse_webhook(body).alerts) == 1


def test_a_missing_fingerprint_is_derived_from_the_labels():
    alert = make_alert("db1")
    del alert["fingerprint"]
    group = parse_webhook(make_webhook([alert]))
    assert group.alerts[0].fingerprint == fallback_fingerprint(alert["labels"])
    assert len(group.alerts[0].fingerprint) == 16


def test_the_title_prefers_the_common_summary():
    body = make_webhook([make_alert("db1")])
    body["commonAnnotations"] = {"summary": "Disks are filling up\nsecond line"}
    assert parse_webhook(body).title() == "Disks are filling up"


def test_an_error_names_the_field():
    body = make_webhook([make_alert("db1"), make_alert("db2")])
    body["alerts"][1]["labels"]["severity"] = ["critical"]
    with pytest.raises(InvalidInput) as caught:
        parse_webhook(body)
    assert caught.value.field == "alerts[1].labels.severity"
