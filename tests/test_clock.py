"""Times leave the service as RFC 3339 in UTC, whatever zone they were read in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from oncall.clock import isoformat, system_clock

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1), timezones=ZONES)
)
def test_isoformat_writes_the_same_instant_in_utc_with_a_z(value: datetime) -> None:
    text = isoformat(value)
    assert text is not None and text.endswith("Z")
    assert datetime.fromisoformat(text) == value


def test_isoformat_keeps_none_and_the_system_clock_is_aware_utc() -> None:
    assert isoformat(None) is None
    assert (
        isoformat(datetime(2026, 1, 5, 13, 0, tzinfo=timezone(timedelta(hours=1))))
        == "2026-01-05T12:00:00Z"
    )
    assert system_clock().tzinfo is UTC
