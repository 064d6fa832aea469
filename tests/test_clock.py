"""Times as whole microseconds since the epoch (how many cross from the writer process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from oncall.clock import from_micros, to_micros

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                         timezone(timedelta(hours=-8))])


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1),
                    timezones=ZONES))
def test_micros_round_trip_to_the_same_instant_in_utc(value: datetime) -> None:
    back = from_micros(to_micros(value))
    assert back == value and back.tzinfo is UTC


def test_micros_count_from_the_epoch() -> None:
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005
