"""Alertmanager matcher syntax and semantics, as a table."""

from __future__ import annotations

import pytest

from oncall.routing.matchers import parse_matcher

LABELS = {"severity": "critical", "team": "db", "instance": "db1:9100", "empty": ""}

# (matcher, labels match?) — one line per behaviour
CASES = [
    ('severity="critical"', True),  # equality
    ('severity="crit"', False),  # equality is exact, not a prefix
    ("severity=critical", True),  # bare values are allowed
    ('severity!="warning"', True),  # inequality
    ('severity!="critical"', False),
    ('team=~"db|infra"', True),  # regex alternation
    ('team=~"d"', False),  # regexes are anchored: no substring match
    ('team=~"d.*"', True),
    ('instance=~"db1"', False),  # anchored at the end too
    ('instance=~"db1:.*"', True),
    ('team!~"db|infra"', False),  # negative regex
    ('team!~"web.*"', True),
    ('missing=""', True),  # an absent label matches as the empty string
    ('missing!=""', False),
    ('empty=""', True),
    ('missing=~".*"', True),
    ('missing=~".+"', False),
    ('severity = "critical"', True),  # spaces around the operator
    ('team=~"DB"', False),  # case-sensitive, as in Go
    ('team=~"(?i)DB"', True),  # ...unless the regex says otherwise
    ('severity="crit\\"ical"', False),  # escaped quote inside the value
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_matcher_semantics(text, expected):
    assert parse_matcher(text).matches(LABELS) is expected


def test_escapes_are_decoded():
    assert parse_matcher(r'a="x\"y\\z\n"').value == 'x"y\\z\n'


@pytest.mark.parametrize(
    "text",
    ["severity", '="x"', 'a=="x"', 'a="x', 'a="x"y"', 'a=~"("', 'a="\\q"', '1a="x"', 'a=x"y'],
)
def test_malformed_matchers_are_rejected(text):
    with pytest.raises(ValueError):
        parse_matcher(text)


def test_a_matcher_prints_as_it_parses():
    matcher = parse_matcher('team=~"db|infra"')
    assert str(matcher) == 'team=~"db|infra"'
    assert parse_matcher(str(matcher)) == matcher
