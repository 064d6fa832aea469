"""The storm guard's decisions, pure: whether the service is in a storm, when a person's
next digest is due and where it goes, what it says; and `[paging] storm_threshold`."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from oncall.errors import ConfigError
from oncall.notify.storm import (
    StormThreshold,
    digest_due,
    digest_targets,
    digest_title,
    in_storm,
    parse_threshold,
)
from tests.support.factories import T0

# The pure decisions.


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


THRESHOLD = StormThreshold(3, timedelta(minutes=5))


@pytest.mark.parametrize(
    ("opened", "now", "storm"),
    [
        ([at(0), at(1), at(2)], at(3), False),  # three within the window: at the threshold
        ([at(0), at(1), at(2), at(3)], at(3), True),  # four: over it
        ([at(0), at(1), at(2), at(3)], at(3 + 299), True),  # the burst ended less than a window ago
        ([at(0), at(1), at(2), at(3)], at(3 + 301), False),  # below it for a whole window
        ([at(0), at(100), at(200), at(300), at(400)], at(400), False),  # never four in one
        ([at(s) for s in range(0, 16, 2)], at(16), True),  # the whole lookback within two windows
    ],
)
def test_it_is_a_storm_until_the_rate_stayed_below_the_threshold_for_a_window(
    opened: list[Any], now: Any, storm: bool
) -> None:
    assert in_storm(reversed(opened), THRESHOLD, now) is storm


def test_a_digest_is_due_now_or_a_minute_after_the_last_one() -> None:
    assert digest_due(None, at(0)) == at(0)
    assert digest_due(at(0), at(10)) == at(60)
    assert digest_due(at(0), at(90)) == at(90)


def test_a_digest_goes_to_the_contacts_paged_first() -> None:
    pages = [("push", timedelta(0)), ("phone", timedelta(minutes=5)), ("mail", timedelta(0))]
    assert digest_targets(pages) == ["push", "mail"]
    assert digest_targets([("phone", timedelta(minutes=5))]) == ["phone"]


def test_a_digest_says_how_many_opened_in_the_window() -> None:
    assert digest_title(143, timedelta(minutes=5)) == "143 incidents opened in the last 5 minutes"
    assert digest_title(1, timedelta(hours=1)) == "1 incident opened in the last hour"


@pytest.mark.parametrize(
    "text",
    [
        "50",  # no window
        "50/",  # an empty window
        "fifty/5m",  # not a count
        "0/5m",  # no incident at all would be a storm
        "50/5 minutes",  # not a Prometheus duration
        "-1/5m",  # a sign
    ],
)
def test_a_bad_threshold_is_an_error_naming_the_key(make_settings: Any, text: str) -> None:
    with pytest.raises(ValueError):
        parse_threshold(text)
    with pytest.raises(ConfigError) as raised:
        make_settings(paging_storm_threshold=text)
    assert "[paging] storm_threshold" in str(raised.value)


def test_the_default_threshold_is_fifty_in_five_minutes(make_settings: Any) -> None:
    threshold = make_settings().paging.storm_threshold
    assert (threshold.count, threshold.window) == (50, timedelta(minutes=5))


def test_a_digest_renders_on_every_channel_with_its_titles_as_text() -> None:
    from oncall.notify.messages import digest_page, html_body, slack_json, text_body, webhook_json
    from oncall.notify.storm import DigestSummary

    summary = DigestSummary(143, timedelta(minutes=5), ((9, "<!channel> DiskFull"), (8, "CPU")))
    page = digest_page(7, summary, "alice", "https://oncall.example/api/v1/incidents", "now")
    assert page.headline == "[STORM] 143 incidents opened in the last 5 minutes"
    assert "#9 <!channel> DiskFull" in text_body(page)
    assert "&lt;!channel&gt;" in html_body(page)
    assert "<!channel>" not in json.dumps(slack_json(page))
    body = webhook_json(page)
    assert body["incident"] is None
    assert body["digest"]["newest"] == [
        {"id": 9, "title": "<!channel> DiskFull"},
        {"id": 8, "title": "CPU"},
    ]


def test_a_storm_is_possible_only_when_enough_incidents_opened_within_two_windows():
    from oncall.notify.storm import StormThreshold, in_storm, storm_possible

    threshold = StormThreshold(3, timedelta(minutes=5))
    now = T0 + timedelta(hours=1)
    assert not storm_possible(None, threshold, now)  # not that many incidents at all
    assert not storm_possible(now - timedelta(minutes=10), threshold, now)
    assert storm_possible(now - timedelta(minutes=9), threshold, now)
    # Wherever the skipped read would have found a storm, the pre-check lets it through:
    # four openings within one window, the oldest of them as early as a storm allows.
    oldest = now - timedelta(minutes=9, seconds=59)
    opened = [oldest + timedelta(seconds=s) for s in (0, 120, 240, 299)]
    assert in_storm(opened, threshold, now) and storm_possible(opened[0], threshold, now)
