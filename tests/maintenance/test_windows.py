"""Maintenance windows, pure: when they open and close (across daylight-saving changes),
what they cover, and the input each problem of which names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oncall.maintenance.windows import Window, check_window, covering, next_edge
from oncall.routing.matchers import parse_matcher

BERLIN_SUNDAY = {"days": ["sun"], "from": "02:00", "to": "04:00", "time_zone": "Europe/Berlin"}


def weekly(**every: object) -> Window:
    window, problems = check_window(
        {"name": "sunday upgrades", "every": {**BERLIN_SUNDAY, **every}}, "directory:w", ()
    )
    assert problems == [] and window is not None
    return window


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "opens", "closes"),
    [
        # winter time (CET, +01:00): 02:00 local is 01:00 UTC
        (utc(2026, 3, 21, 12), utc(2026, 3, 22, 1), utc(2026, 3, 22, 3)),
        # the spring-forward Sunday: 02:00 does not exist; opens at 03:00 CEST, closes 04:00
        (utc(2026, 3, 28, 12), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)),
        # summer time (CEST, +02:00): 02:00 local is 00:00 UTC
        (utc(2026, 4, 4, 12), utc(2026, 4, 5, 0), utc(2026, 4, 5, 2)),
        # the fall-back Sunday: 02:00 happens twice, the first (CEST); 04:00 is CET
        (utc(2026, 10, 24, 12), utc(2026, 10, 25, 0), utc(2026, 10, 25, 3)),
        # winter time again
        (utc(2026, 10, 31, 12), utc(2026, 11, 1, 1), utc(2026, 11, 1, 3)),
    ],
)
def test_a_weekly_window_opens_at_its_local_time_across_daylight_saving_changes(
    before: datetime, opens: datetime, closes: datetime
) -> None:
    window = weekly()
    assert next_edge([window], before) == opens
    assert not window.is_open(opens - timedelta(seconds=1))
    assert window.is_open(opens)
    assert next_edge([window], opens) == closes
    assert window.is_open(closes - timedelta(seconds=1))
    assert not window.is_open(closes)


def test_a_weekly_window_past_midnight_closes_the_next_day() -> None:
    window = weekly(days=["sat"], **{"from": "22:00", "to": "06:00"})
    saturday_night = utc(2026, 7, 4, 21)  # 23:00 CEST
    assert window.is_open(saturday_night)
    assert next_edge([window], saturday_night) == utc(2026, 7, 5, 4)


def test_a_one_off_window_opens_at_start_and_closes_at_end_then_never_again() -> None:
    window, _ = check_window(
        {
            "name": "db upgrade",
            "start": "2026-12-01T02:00:00+01:00",
            "end": "2026-12-01T04:00:00+01:00",
        },
        "api:1",
        (),
    )
    assert window is not None
    assert next_edge([window], utc(2026, 11, 30)) == utc(2026, 12, 1, 1)
    assert window.is_open(utc(2026, 12, 1, 1))
    assert next_edge([window], utc(2026, 12, 1, 1)) == utc(2026, 12, 1, 3)
    assert next_edge([window], utc(2026, 12, 1, 3)) is None


def test_the_next_edge_of_several_windows_is_the_soonest() -> None:
    late = Window("api:1", "late", start=utc(2026, 1, 2), end=utc(2026, 1, 3))
    soon = Window("api:2", "soon", start=utc(2026, 1, 1, 5), end=utc(2026, 1, 4))
    assert next_edge([late, soon], utc(2026, 1, 1)) == utc(2026, 1, 1, 5)
    assert next_edge([], utc(2026, 1, 1)) is None


@pytest.mark.parametrize(
    ("match", "integrations", "labels", "integration", "covered"),
    [
        ((), (), {"team": "web"}, "prometheus", True),  # neither: covers everything
        (('team="db"',), (), {"team": "db"}, "prometheus", True),
        (('team="db"',), (), {"team": "web"}, "prometheus", False),
        (('team=~"d.*"', 'env!="prod"'), (), {"team": "db", "env": "prod"}, "x", False),
        ((), ("grafana",), {"team": "db"}, "grafana", True),
        ((), ("grafana",), {"team": "db"}, "prometheus", False),
        (('team="db"',), ("grafana",), {"team": "db"}, "prometheus", False),  # both must hold
        (('team="db"',), ("grafana",), {"team": "db"}, "grafana", True),
    ],
)
def test_a_window_covers_by_its_matchers_and_integrations(
    match: tuple[str, ...],
    integrations: tuple[str, ...],
    labels: dict[str, str],
    integration: str,
    covered: bool,
) -> None:
    window = Window(
        "api:1",
        "w",
        tuple(parse_matcher(m) for m in match),
        frozenset(integrations),
        start=utc(2026, 1, 1),
        end=utc(2026, 1, 2),
    )
    assert window.covers(labels, integration) is covered
    found = covering([window], labels, integration, utc(2026, 1, 1, 12))
    assert (found is window) is covered
    assert covering([window], labels, integration, utc(2026, 1, 2)) is None  # closed


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}, "name"),
        ({"name": "w", "end": "2026-01-02T00:00:00Z"}, "start"),
        ({"name": "w"}, "start"),
        ({"name": "w", "start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00Z"}, "start"),
        ({"name": "w", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"name": "w", "start": "tomorrow", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"name": "w", "every": {**BERLIN_SUNDAY, "days": ["sunday"]}}, "every.days"),
        ({"name": "w", "every": {**BERLIN_SUNDAY, "from": "2am"}}, "every.from"),
        ({"name": "w", "every": {**BERLIN_SUNDAY, "to": "02:00"}}, "every.to"),
        ({"name": "w", "every": {**BERLIN_SUNDAY, "time_zone": "Mars/Olympus"}}, "every.time_zone"),
        ({"name": "w", "every": {**BERLIN_SUNDAY, "hours": 2}}, "every.hours"),
        ({"name": "w", "every": BERLIN_SUNDAY, "match": ['team="db']}, "match[0]"),
        ({"name": "w", "every": BERLIN_SUNDAY, "match": "team=db"}, "match"),
        ({"name": "w", "every": BERLIN_SUNDAY, "integrations": ["nope"]}, "integrations[0]"),
        ({"name": "w", "every": BERLIN_SUNDAY, "reason": "x"}, "reason"),
    ],
)
def test_bad_input_names_its_field(data: dict[str, object], field: str) -> None:
    window, problems = check_window(data, "api:0", ("prometheus",))
    assert window is None
    assert field in [f for f, _ in problems]


def test_the_directory_files_windows_are_checked_with_their_paths() -> None:
    from oncall.directory.parse import parse_directory
    from oncall.errors import ConfigError
    from tests.support.factories import DIRECTORY_YAML

    good = DIRECTORY_YAML + (
        "maintenance:\n"
        '  - {name: sunday, every: {days: [sun], from: "02:00", to: "04:00",'
        " time_zone: Europe/Berlin}, integrations: [prometheus]}\n"
    )
    [window] = parse_directory(good, {}, "d.yaml").maintenance
    assert window.key == "directory:sunday" and window.integrations == {"prometheus"}
    bad = good + (
        '  - {name: sunday, start: "2026-01-01T00:00:00Z", end: "2026-01-02T00:00:00Z"}\n'
        '  - {name: other, every: {from: "02:00", to: "04:00", time_zone: Nowhere},'
        " integrations: [grafana]}\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_directory(bad, {}, "d.yaml")
    assert raised.value.problems == [
        "d.yaml: maintenance[1].name: duplicate name 'sunday'",
        "d.yaml: maintenance[2].every.time_zone: unknown time zone 'Nowhere'",
        "d.yaml: maintenance[2].integrations[0]: expected an integration's name",
    ]
