"""The property test's strategies draw what they say: real 2027 daylight-saving changes,
and cases whose directory the service accepts and whose payload its parsers take."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings

from oncall.ingest.alertmanager import parse_webhook
from oncall.ingest.events_v2 import parse_event
from tests.simulate.cases import Case
from tests.simulate.engine import hook_directory
from tests.simulate.strategies import DST_CHANGES, cases


def test_each_change_is_one_where_a_zone_changes_its_offset() -> None:
    for change in DST_CHANGES:
        moved = [
            zone
            for zone in ("Europe/Berlin", "America/New_York")
            if change.astimezone(ZoneInfo(zone)).utcoffset()
            != (change - timedelta(seconds=1)).astimezone(ZoneInfo(zone)).utcoffset()
        ]
        assert len(moved) == 1, change


@settings(max_examples=60, deadline=None, derandomize=True)
@given(cases())
def test_every_drawn_case_is_a_valid_directory_and_payload(case: Case) -> None:
    directory = hook_directory(case, "http://127.0.0.1:9/hook")  # raises ConfigError
    assert {"am", "ev"} <= set(directory.integrations)
    assert all(o.schedule in directory.schedules for o in case.overrides)
    if case.source == "alertmanager":
        parse_webhook(dict(case.payload))
    else:
        parse_event(dict(case.payload))
