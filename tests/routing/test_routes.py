"""Routing: Alertmanager matchers on the incident's labels, first match wins."""

from __future__ import annotations

import pytest

from oncall.directory.parse import parse_directory
from oncall.routing.routes import choose_route
from tests.support.factories import AM_TOKEN

ROUTES = f"""
integrations: [{{name: am, type: alertmanager, token: "{AM_TOKEN}"}}]
users: [{{name: alice}}]
policies:
  - {{name: p{{i}}, levels: [{{notify: ["user:alice"], escalate_after: 5m}}]}}
routes:
  - {{match: ['severity="critical"', 'team=~"db|infra"'], policy: p0}}
  - {{match: ['severity="critical"'], policy: p1}}
  - {{match: ['env!="prod"', 'service!~"api.*"'], policy: p2}}
  - {{match: ['instance=~"db[0-9]+"'], policy: p3}}
  - {{match: ['team="web"'], policy: p4}}
  - {{policy: p5}}
"""


def directory():
    text = ROUTES.replace(
        '  - {name: p{i}, levels: [{notify: ["user:alice"], escalate_after: 5m}]}\n',
        "".join(
            f'  - {{name: p{i}, levels: [{{notify: ["user:alice"], escalate_after: 5m}}]}}\n'
            for i in range(6)
        ),
    )
    return parse_directory(text, {})


# (labels, expected policy) — one line per rule
CASES = [
    ({"severity": "critical", "team": "db", "env": "prod"}, "p0"),  # = and =~ both match
    ({"severity": "critical", "team": "infra", "env": "prod"}, "p0"),  # regex alternation
    ({"severity": "critical", "team": "dba", "env": "prod"}, "p1"),  # =~ is anchored: no "dba"
    ({"severity": "critical", "env": "prod"}, "p1"),  # first match wins over p2..
    ({"severity": "warning", "env": "staging", "service": "web"}, "p2"),  # != and !~ match
    ({"severity": "warning", "env": "staging", "service": "api-gw"}, "p5"),  # !~ excludes
    ({"severity": "warning", "env": "prod", "instance": "db12"}, "p3"),  # anchored regex
    ({"severity": "warning", "env": "prod", "instance": "db12:9100"}, "p5"),  # not a prefix match
    ({"env": "prod", "team": "web"}, "p4"),
    ({"severity": "warning", "service": "x"}, "p2"),  # absent env counts as "" and "" != "prod"
    ({"env": "prod"}, "p5"),  # the catch-all
]


@pytest.mark.parametrize(("labels", "policy"), CASES, ids=[str(c[0]) for c in CASES])
def test_the_first_matching_route_wins(labels, policy):
    assert choose_route(directory().routes, labels).policy == policy


def test_a_route_describes_itself_for_the_timeline():
    route = directory().routes[0]
    assert route.describe() == 'routes[0] {severity="critical", team=~"db|infra"}'
