"""contrib/: the Prometheus alerting rules and the Grafana dashboard query only metrics a
running service exports, every alert has a unit test (run by promtool in .ci/contrib),
and the dashboard is in the form Grafana imports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ops import OPS

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
RULES = CONTRIB / "prometheus" / "oncall-rules.yml"
RULE_TESTS = CONTRIB / "prometheus" / "oncall-rules.test.yml"
DASHBOARD = CONTRIB / "grafana" / "oncall-dashboard.json"

# Series Prometheus itself writes for every target it scrapes.
SCRAPE_SERIES = {"up"}
# The sample names each type of metric family has in the exposition.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
# Grafana's variables, replaced by values PromQL parses.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "6h",
    "$job": "oncall",
    "$instance": "oncall:8080",
}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def metric_names(expression: str) -> set[str]:
    """Return the metric name of every selector in a PromQL expression."""
    names: set[str] = set()
    anonymous: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:  # {__name__=~"..."}: not a name this test can look up
                anonymous.append(str(node))

    promql_parser.walk(promql_parser.parse(expression), visit)
    assert not anonymous, f"selectors without a metric name in {expression!r}: {anonymous}"
    return names


def grafana_expression(query: str) -> str:
    """Return a dashboard query as PromQL: its variables replaced, and the selector of a
    `label_values(selector, label)` variable query."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace("${" + variable[1:] + "}", value).replace(variable, value)
    match = LABEL_VALUES.match(query)
    if match:
        assert match["selector"], f"{query!r} names no metric"
        return match["selector"]
    assert "$" not in query, f"a Grafana variable this test does not know in {query!r}"
    return query


def dashboard_queries() -> list[str]:
    queries = [target["expr"] for panel in panels() for target in panel["targets"]]
    queries += [variable["query"] for variable in dashboard()["templating"]["list"]]
    return queries


async def exported_names(client: Any) -> set[str]:
    """Return every sample name the service's /metrics has or can have (a labelled
    family shows no sample before its first increment, only its type)."""
    response = await client.get("/metrics", headers=OPS)
    assert response.status == 200
    names: set[str] = set()
    for family in text_string_to_metric_families(await response.text()):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


async def test_the_rules_query_only_metrics_the_service_exports(client):
    exported = await exported_names(client) | SCRAPE_SERIES
    used = {name for rule in alerting_rules() for name in metric_names(rule["expr"])}
    assert used - exported == set()
    # The selectors were found (an empty set would pass the check above).
    assert {"oncall_escalation_steps_overdue", "oncall_reconcile_repairs_total"} <= used


async def test_the_dashboard_queries_only_metrics_the_service_exports(client):
    exported = await exported_names(client) | SCRAPE_SERIES
    queries = [grafana_expression(query) for query in dashboard_queries()]
    used = {name for query in queries for name in metric_names(query)}
    assert used - exported == set()


def test_every_alert_has_a_severity_a_summary_and_a_runbook():
    for rule in alerting_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]


def test_every_alert_has_a_unit_test_that_fires_it():
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    fired = {
        check["alertname"]
        for test in tests["tests"]
        for check in test["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert {rule["alert"] for rule in alerting_rules()} - fired == set()


def test_the_dashboard_is_in_the_form_grafana_imports():
    board = dashboard()
    [source] = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    assert board["schemaVersion"] >= 39
    assert board["id"] is None and board["uid"]
    uses = [panel["datasource"] for panel in panels()]
    uses += [target["datasource"] for panel in panels() for target in panel["targets"]]
    uses += [variable["datasource"] for variable in board["templating"]["list"]]
    assert [use for use in uses if use != {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}] == []
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    required = {(item["type"], item["id"]) for item in board["__requires"]}
    assert {("panel", panel["type"]) for panel in panels()} <= required


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        # a function of a range of one metric
        ("rate(oncall_incidents_total[5m])", {"oncall_incidents_total"}),
        # both sides of a binary operator, labels in matchers not taken for names
        (
            'a{b="c"} / ignoring (outcome) sum by (d) (e) unless absent(up{job="x"})',
            {"a", "e", "up"},
        ),
    ],
)
def test_metric_names_finds_every_selector(expression, names):
    assert metric_names(expression) == names


def test_grafana_queries_become_promql():
    assert grafana_expression('sum(rate(x{job=~"$job"}[$__rate_interval]))') == (
        'sum(rate(x{job=~"oncall"}[1m]))'
    )
    assert grafana_expression('label_values(x{job=~"${job}"}, instance)') == 'x{job=~"oncall"}'
