"""Every rejected request gets its status and a JSON error, and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, AM_AUTH, make_alert, make_webhook

URL = "/api/v1/integrations/alertmanager"
USER = {"Authorization": f"Bearer {ALICE_TOKEN}"}


def webhook_with(**changes: Any) -> bytes:
    body = make_webhook([make_alert("db1")])
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is ...:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return json.dumps(body).encode()


# (case, body, headers, expected status, expected field or None)
CASES = [
    # not JSON at all
    ("invalid json", b"{not json", AM_AUTH, 400, "$"),
    # JSON, but not an object
    ("json array", b"[]", AM_AUTH, 400, "$"),
    # invalid UTF-8
    ("bad utf-8", b'{"a": "\xff"}', AM_AUTH, 400, "$"),
    # required top-level fields
    ("missing alerts", webhook_with(alerts=...), AM_AUTH, 400, "alerts"),
    ("missing groupKey", webhook_with(groupKey=...), AM_AUTH, 400, "groupKey"),
    ("missing status", webhook_with(status=...), AM_AUTH, 400, "status"),
    # wrong types
    ("alerts not a list", webhook_with(alerts={"a": 1}), AM_AUTH, 400, "alerts"),
    ("groupKey a number", webhook_with(groupKey=7), AM_AUTH, 400, "groupKey"),
    (
        "truncatedAlerts a string",
        webhook_with(truncatedAlerts="3"),
        AM_AUTH,
        400,
        "truncatedAlerts",
    ),
    # one more than the database's integer columns hold (PostgreSQL's `integer`)
    (
        "truncatedAlerts beyond the database's integers",
        webhook_with(truncatedAlerts=2**31),
        AM_AUTH,
        400,
        "truncatedAlerts",
    ),
    ("unsupported version", webhook_with(version="5"), AM_AUTH, 400, "version"),
    ("alert not an object", webhook_with(alerts=[3]), AM_AUTH, 400, "alerts[0]"),
    (
        "alert status unknown",
        webhook_with(alerts__0__status="on fire"),
        AM_AUTH,
        400,
        "alerts[0].status",
    ),
    (
        "label value a number",
        webhook_with(alerts__0__labels={"instance": 1}),
        AM_AUTH,
        400,
        "alerts[0].labels.instance",
    ),
    ("labels missing", webhook_with(alerts__0__labels=...), AM_AUTH, 400, "alerts[0].labels"),
    ("startsAt missing", webhook_with(alerts__0__startsAt=...), AM_AUTH, 400, "alerts[0].startsAt"),
    (
        "startsAt garbage",
        webhook_with(alerts__0__startsAt="yesterday"),
        AM_AUTH,
        400,
        "alerts[0].startsAt",
    ),
    (
        "startsAt impossible date",
        webhook_with(alerts__0__startsAt="2026-02-30T00:00:00Z"),
        AM_AUTH,
        400,
        "alerts[0].startsAt",
    ),
    ("endsAt a number", webhook_with(alerts__0__endsAt=5), AM_AUTH, 400, "alerts[0].endsAt"),
    (
        "annotations a list",
        webhook_with(alerts__0__annotations=["x"]),
        AM_AUTH,
        400,
        "alerts[0].annotations",
    ),
    # credentials
    ("no token", webhook_with(), {}, 401, "Authorization"),
    (
        "wrong token",
        webhook_with(),
        {"Authorization": "Bearer wrong-token-12345"},
        401,
        "Authorization",
    ),
    ("a user token on the webhook", webhook_with(), USER, 401, "Authorization"),
    (
        "basic without password",
        webhook_with(),
        {"Authorization": "Basic YWxpY2U6"},
        401,
        "Authorization",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "field"), CASES, ids=[c[0] for c in CASES]
)
async def test_a_bad_webhook_is_rejected_and_writes_nothing(
    client, case, body, headers, status, field
):
    before = await snapshot(client)
    response = await client.post(
        URL, data=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status == status
    error = await response.json()
    assert error["error"]
    assert error.get("field") == field
    assert await snapshot(client) == before


async def test_an_oversize_body_gets_413_and_writes_nothing(make_client):
    client = await make_client(server_max_body_bytes="2048")
    before = await snapshot(client)
    alerts = [make_alert(f"host{i}") for i in range(50)]
    response = await client.post(URL, json=make_webhook(alerts), headers=AM_AUTH)
    assert response.status == 413
    assert "2048" in (await response.json())["error"]
    assert await snapshot(client) == before


async def test_a_rejected_request_in_the_middle_of_a_group_keeps_earlier_state(client):
    good = make_webhook([make_alert("db1")])
    assert (await client.post(URL, json=good, headers=AM_AUTH)).status == 200
    before = await snapshot(client)
    # The second alert is bad: the first (new) one must not be half-written.
    bad = make_webhook([make_alert("db2"), {**make_alert("db3"), "startsAt": "never"}])
    response = await client.post(URL, json=bad, headers=AM_AUTH)
    assert response.status == 400
    assert (await response.json())["field"] == "alerts[1].startsAt"
    assert await snapshot(client) == before


# (case, method, path, headers, expected status, expected field)
API_CASES = [
    ("unknown incident", "GET", "/api/v1/incidents/999", USER, 404, "id"),
    ("acknowledge unknown incident", "POST", "/api/v1/incidents/999/acknowledge", USER, 404, "id"),
    ("resolve unknown incident", "POST", "/api/v1/incidents/999/resolve", USER, 404, "id"),
    ("list without token", "GET", "/api/v1/incidents", {}, 401, "Authorization"),
    ("list with the integration token", "GET", "/api/v1/incidents", AM_AUTH, 401, "Authorization"),
    ("unknown status filter", "GET", "/api/v1/incidents?status=open", USER, 400, "status"),
    ("limit not a number", "GET", "/api/v1/incidents?limit=ten", USER, 400, "limit"),
    ("limit too large", "GET", "/api/v1/incidents?limit=100000", USER, 400, "limit"),
    ("forged cursor", "GET", "/api/v1/incidents?cursor=%%%", USER, 400, "cursor"),
    (
        "acknowledge without token",
        "POST",
        "/api/v1/incidents/1/acknowledge",
        {},
        401,
        "Authorization",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "headers", "status", "field"),
    API_CASES,
    ids=[c[0] for c in API_CASES],
)
async def test_a_bad_api_request_gets_its_status_and_writes_nothing(
    client, case, method, path, headers, status, field
):
    before = await snapshot(client)
    response = await client.request(method, path, headers=headers)
    assert response.status == status
    assert (await response.json()).get("field") == field
    assert await snapshot(client) == before


async def test_acknowledging_a_resolved_incident_is_a_conflict_and_writes_nothing(client):
    response = await client.post(URL, json=make_webhook([make_alert("db1")]), headers=AM_AUTH)
    [incident_id] = (await response.json())["incidents"]
    await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=USER)
    before = await snapshot(client)
    response = await client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=USER)
    assert response.status == 409
    assert (await response.json())["field"] == "status"
    assert await snapshot(client) == before


async def test_an_unknown_path_is_a_json_404(client):
    response = await client.get("/api/v1/nothing-here", headers=USER)
    assert response.status == 404
    assert (await response.json())["error"]
