"""Grafana's documented webhook body through the real endpoints, on both databases: one
incident with both alerts, resolved by the resolved body; taken on Grafana's endpoint (POST
or PUT, bearer or Basic) and on Alertmanager's; a malformed alert refused naming its field
with nothing written; `type: grafana` in the directory."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from oncall.directory.parse import parse_directory
from oncall.errors import ConfigError
from tests.support.db import snapshot
from tests.support.factories import (
    ALICE_TOKEN,
    AM_AUTH,
    DIRECTORY_YAML,
    load_payload,
    make_alert,
    make_webhook,
)

GRAFANA_URL = "/api/v1/integrations/grafana"
AM_URL = "/api/v1/integrations/alertmanager"
GRAFANA_TOKEN = "grafana-token-0123456789abcdefghijklmnopqrstuv"
GRAFANA_AUTH = {"Authorization": f"Bearer {GRAFANA_TOKEN}"}
USER = {"Authorization": f"Bearer {ALICE_TOKEN}"}
DIRECTORY = DIRECTORY_YAML.replace(
    "integrations:\n",
    f'integrations:\n  - {{name: grafana, type: grafana, token: "{GRAFANA_TOKEN}"}}\n',
)
SILENCE_US = (
    "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
    "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1"
)


@pytest.fixture
async def grafana_client(make_client: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await make_client(directory=DIRECTORY)
    return client


def firing() -> dict[str, Any]:
    return copy.deepcopy(load_payload("grafana_firing"))


async def deliver(
    client: TestClient[Any, Any],
    body: dict[str, Any],
    url: str = GRAFANA_URL,
    headers: dict[str, str] = GRAFANA_AUTH,
    method: str = "POST",
) -> list[int]:
    response = await client.request(method, url, json=body, headers=headers)
    assert response.status == 200, await response.text()
    incidents: list[int] = (await response.json())["incidents"]
    return incidents


async def incident(client: TestClient[Any, Any], incident_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/incidents/{incident_id}", headers=USER)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_the_documented_body_opens_one_incident_that_the_resolved_body_resolves(
    grafana_client,
):
    [incident_id] = await deliver(grafana_client, firing())
    assert await deliver(grafana_client, firing()) == [incident_id]  # a repeat joins it
    opened = await incident(grafana_client, incident_id)
    assert (opened["status"], opened["integration"]) == ("triggered", "grafana")
    assert (opened["dedup_key"], opened["title"]) == ("{}:{}", "High memory usage")
    assert opened["external_url"] == "https://play.grafana.org/"
    assert opened["alert_count"] == 2
    assert opened["annotations"] == {}  # Grafana's commonAnnotations
    alerts = {a["fingerprint"]: a for a in opened["alerts"]}
    assert set(alerts) == {"c6eadffa33fcdf37", "bc97ff14869b13e3"}
    memory = alerts["c6eadffa33fcdf37"]
    assert memory["starts_at"] == "2021-10-12T07:51:03.157076Z"  # +02:00 in UTC
    assert memory["status"] == "firing" and memory["ends_at"] is None
    assert memory["generator_url"] == "https://play.grafana.org/alerting/1afz29v7z/edit"
    assert memory["annotations"]["runbook_url"] == "https://myrunbook.com/runbook/1234"
    # Grafana's own fields, structured: its links, and its values as numbers.
    assert memory["links"] == [{"href": SILENCE_US, "text": "Silence in Grafana"}]
    assert memory["images"] == []
    assert memory["custom_details"] == {"values": {"B": 44.23943737541908, "C": 1}}
    assert alerts["bc97ff14869b13e3"]["starts_at"] == "2021-10-12T07:56:03.157076Z"

    assert await deliver(grafana_client, load_payload("grafana_resolved")) == [incident_id]
    resolved = await incident(grafana_client, incident_id)
    assert resolved["status"] == "resolved"
    assert resolved["alert_count"] == 2  # the same two alerts, not two more
    assert {(a["status"], a["ends_at"]) for a in resolved["alerts"]} == {
        ("resolved", "2021-10-12T08:06:03.157076Z")
    }
    # An alert keeps the context it fired with, as it keeps its annotations.
    assert {a["links"][0]["href"] for a in resolved["alerts"]} == {
        SILENCE_US,
        SILENCE_US.replace("T2", "T1").replace("us-1", "eu-1"),
    }
    assert {a["custom_details"]["values"]["B"] for a in resolved["alerts"]} == {44.23943737541908}
    assert [e["detail"] for e in resolved["timeline"] if e["type"] == "incident.resolved"] == [
        {"reason": "all alerts resolved"}
    ]


async def test_the_alertmanager_endpoint_takes_grafanas_body_for_either_type(grafana_client):
    # An alertmanager integration (what a Grafana user had to set up before) and a grafana one.
    [by_alertmanager] = await deliver(grafana_client, firing(), AM_URL, AM_AUTH)
    assert (await incident(grafana_client, by_alertmanager))["integration"] == "prometheus"
    [by_grafana] = await deliver(grafana_client, firing(), AM_URL, GRAFANA_AUTH)
    assert by_grafana != by_alertmanager  # each integration has its own groups
    opened = await incident(grafana_client, by_grafana)
    assert opened["integration"] == "grafana" and opened["alert_count"] == 2
    assert opened["alerts"][0]["custom_details"] == {"values": {"B": 44.23943737541908, "C": 1}}
    # ... and still Alertmanager's own body.
    [plain] = await deliver(grafana_client, make_webhook([make_alert("db1")]), AM_URL, AM_AUTH)
    assert plain not in (by_alertmanager, by_grafana)


async def test_grafanas_endpoint_takes_put_and_basic_authentication(grafana_client):
    # Grafana's contact point may be set to PUT, and to HTTP Basic with any user name.
    basic = base64.b64encode(f"grafana:{GRAFANA_TOKEN}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    [incident_id] = await deliver(grafana_client, firing(), method="PUT", headers=headers)
    assert (await incident(grafana_client, incident_id))["alert_count"] == 2


async def test_grafanas_endpoint_is_only_for_grafana_integrations(grafana_client):
    response = await grafana_client.post(GRAFANA_URL, json=firing(), headers=AM_AUTH)
    assert response.status == 401
    assert (await response.json())["field"] == "Authorization"


@pytest.mark.parametrize(
    ("url", "headers"), [(GRAFANA_URL, GRAFANA_AUTH), (AM_URL, AM_AUTH)], ids=["grafana", "am"]
)
async def test_a_malformed_alert_is_refused_naming_its_field_and_nothing_is_written(
    grafana_client, url, headers
):
    before = await snapshot(grafana_client)
    body = firing()
    body["alerts"][1]["values"] = {"B": "44.2"}
    response = await grafana_client.post(url, json=body, headers=headers)
    assert response.status == 400
    answer = await response.json()
    assert answer == {"error": "expected a number", "field": "alerts[1].values.B"}
    body = firing()
    body["alerts"][0]["startsAt"] = "2021-10-12T09:51:03.157076+2:00"
    response = await grafana_client.post(url, json=body, headers=headers)
    assert response.status == 400
    assert (await response.json())["field"] == "alerts[0].startsAt"
    assert await snapshot(grafana_client) == before


async def test_grafanas_endpoint_refuses_another_version_naming_it(grafana_client):
    response = await grafana_client.post(
        GRAFANA_URL, json=make_webhook([make_alert("db1")]), headers=GRAFANA_AUTH
    )
    assert response.status == 400
    assert (await response.json())["field"] == "version"


def test_the_directory_takes_a_grafana_integration():
    directory = parse_directory(DIRECTORY, {}, "oncall.yaml")
    grafana = directory.integrations["grafana"]
    assert grafana.type == "grafana"
    assert directory.integration_for_token("grafana", GRAFANA_TOKEN) is grafana
    assert directory.integration_for_token("alertmanager", GRAFANA_TOKEN) is None


def test_an_unknown_type_names_grafana_among_those_expected():
    text = DIRECTORY.replace("type: grafana", "type: grafana_oncall")
    with pytest.raises(ConfigError) as refused:
        parse_directory(text, {}, "oncall.yaml")
    assert "integrations[0].type" in str(refused.value)
    assert "alertmanager, events_v2, grafana, heartbeat" in str(refused.value)
