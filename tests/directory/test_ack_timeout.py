"""`ack_timeout` on a policy or a route: a positive Prometheus duration, unset by default;
a bad one is a config error with its path."""

from __future__ import annotations

from datetime import timedelta

import pytest

from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError
from tests.support.factories import DIRECTORY_YAML

POLICY = "  - name: default\n    repeat: 1\n"
CATCH_ALL = "  - {policy: default}\n"


def with_timeouts(policy: str | None = None, route: str | None = None) -> str:
    text = DIRECTORY_YAML
    if policy is not None:
        text = text.replace(POLICY, f"{POLICY}    ack_timeout: {policy}\n")
    if route is not None:
        text = text.replace(CATCH_ALL, f"  - {{policy: default, ack_timeout: {route}}}\n")
    return text


def test_ack_timeouts_are_unset_by_default():
    directory = parse_directory(DIRECTORY_YAML, {})
    assert directory.policies["default"].ack_timeout is None
    assert [route.ack_timeout for route in directory.routes] == [None, None]


def test_a_policy_and_a_route_each_take_an_ack_timeout():
    directory = parse_directory(with_timeouts(policy="30m", route="1h30m"), {})
    assert directory.policies["default"].ack_timeout == timedelta(minutes=30)
    assert directory.routes[-1].ack_timeout == timedelta(hours=1, minutes=30)
    assert directory.routes[0].ack_timeout is None


@pytest.mark.parametrize(
    ("policy", "route", "expected"),
    [
        # not a duration
        ("soon", None, "d.yaml: policies[0].ack_timeout: 'soon' is not a duration"),
        # zero would put every acknowledgement back at once
        (None, "0s", "d.yaml: routes[1].ack_timeout: must be above zero"),
        # a number without its unit
        (None, "30", "d.yaml: routes[1].ack_timeout: '30' is not a duration"),
    ],
)
def test_a_bad_ack_timeout_names_its_path(policy, route, expected):
    with pytest.raises(ConfigError) as caught:
        parse_directory(with_timeouts(policy, route), {}, "d.yaml")
    assert any(problem.startswith(expected) for problem in caught.value.problems), (
        caught.value.problems
    )
