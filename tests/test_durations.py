"""Prometheus durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oncall.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1w", timedelta(weeks=1)),
        ("1y", timedelta(days=365)),
        ("250ms", timedelta(milliseconds=250)),
        ("1m30s500ms", timedelta(seconds=90.5)),
        ("0", timedelta(0)),
    ],
)
def test_valid_durations(text, expected):
    assert parse_duration(text) == expected
    if expected:
        assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "5", "5 m", "m", "-5m", "1.5h", "30m1h", "5min", "1h1h"])
def test_invalid_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
