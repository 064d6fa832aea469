"""Ids, times and cursors out of range, deep JSON and bodies over a route's own cap: each a
4xx naming the problem, never a 500, and none of them writes anything."""

from __future__ import annotations

import base64
import json

import pytest

from oncall.db.jsoncodec import MAX_DEPTH
from oncall.web.bodies import SMALL_BODY
from tests.support.db import snapshot
from tests.support.factories import ALICE_TOKEN, AM_AUTH, T0, make_alert, make_webhook
from tests.web.test_schedules import directory_text

USER = {"Authorization": f"Bearer {ALICE_TOKEN}"}
HUGE = "99999999999999999999"  # past 64 bits: SQLite cannot bind it, PostgreSQL refuses it
LATE = "9999-12-31T23:59:59+00:00"  # a week or a rotation later is past datetime's end
EARLY = "0001-01-01T00:00:00+14:00"  # in UTC, before datetime's first day
# The same in a query string, where a bare "+" would arrive as a space
LATE_Q, EARLY_Q = LATE.replace("+", "%2B"), EARLY.replace("+", "%2B")
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"
HB_TOKEN = "hb-token-0123456789abcdefghijklmnopqrstuv"


def cursor(text: str) -> str:
    """Return `text` encoded as this API encodes its cursors."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def directory() -> str:
    """The schedules directory, with an Events v2 integration and a heartbeat."""
    return directory_text().replace(
        "integrations:\n",
        f"""integrations:
  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}
  - {{name: nightly, type: heartbeat, token: "{HB_TOKEN}", interval: 1h, grace: 1h}}
""",
    )


def override(start: str, end: str) -> dict[str, str]:
    return {"user": "bob", "start": start, "end": end}


# (case, method, path, JSON body or None, field named in the answer)
OUT_OF_RANGE = [
    # ids past the database's integer columns, in the path and in the query
    ("huge incident id", "GET", f"/api/v1/incidents/{HUGE}", None, "id"),
    ("huge id to acknowledge", "POST", f"/api/v1/incidents/{HUGE}/acknowledge", None, "id"),
    ("huge id to resolve", "POST", f"/api/v1/incidents/{HUGE}/resolve", None, "id"),
    (
        "huge override id",
        "DELETE",
        f"/api/v1/schedules/primary/overrides/{HUGE}",
        None,
        "id",
    ),
    ("huge incident filter", "GET", f"/api/v1/notifications?incident={HUGE}", None, "incident"),
    # cursors: a huge id, an id of thousands of digits, a negative one
    ("huge cursor id", "GET", f"/api/v1/incidents?cursor={cursor('id:' + HUGE)}", None, "cursor"),
    (
        "oversized cursor",
        "GET",
        f"/api/v1/incidents?cursor={cursor('id:' + '9' * 3000)}",
        None,
        "cursor",
    ),
    ("negative cursor", "GET", f"/api/v1/incidents?cursor={cursor('id:-1')}", None, "cursor"),
    # times at datetime's ends, as query parameters and in a body
    ("late shifts start", "GET", f"/api/v1/schedules/primary/shifts?start={LATE_Q}", None, "start"),
    (
        "early shifts start",
        "GET",
        f"/api/v1/schedules/primary/shifts?start={EARLY_Q}",
        None,
        "start",
    ),
    ("late on-call time", "GET", f"/api/v1/oncall?at={LATE_Q}", None, "at"),
    ("early on-call time", "GET", f"/api/v1/oncall?at={EARLY_Q}", None, "at"),
    (
        "late override end",
        "POST",
        "/api/v1/schedules/primary/overrides",
        override("2026-01-05T12:00:00+00:00", LATE),
        "end",
    ),
    (
        "early override start",
        "POST",
        "/api/v1/schedules/primary/overrides",
        override(EARLY, "2026-01-05T12:00:00+00:00"),
        "start",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "body", "field"), OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE]
)
async def test_a_value_out_of_range_is_a_400_naming_its_field(
    make_client, case, method, path, body, field
):
    client = await make_client(directory=directory())
    before = await snapshot(client)
    response = await client.request(method, path, headers=USER, json=body)
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == field
    assert await snapshot(client) == before


def deep(levels: int) -> str:
    """Return a JSON array nested `levels` deep."""
    return "[" * levels + "]" * levels


def alertmanager_with_deep_extra(levels: int) -> str:
    """A valid webhook that also carries, under a key the parser ignores, a deep value."""
    body = make_webhook([make_alert("db1")])
    return json.dumps(body)[:-1] + f', "extra": {deep(levels)}}}'


# (case, path, headers, body text)
DEEP = [
    # deeper than the standard module's stack allows
    ("events v2, very deep", "/v2/enqueue", {}, deep(30_000)),
    ("alertmanager, very deep", "/api/v1/integrations/alertmanager", AM_AUTH, deep(30_000)),
    ("override, very deep", "/api/v1/schedules/primary/overrides", USER, deep(30_000)),
    # past the limit, yet within what either decoder would read
    (
        "events v2, past the limit",
        "/v2/enqueue",
        {},
        json.dumps({"routing_key": EV_TOKEN, "event_action": "trigger"})[:-1]
        + f', "payload": {{"summary": "s", "source": "s", "severity": "info", '
        f'"custom_details": {deep(MAX_DEPTH + 10)}}}}}',
    ),
    (
        "alertmanager, past the limit",
        "/api/v1/integrations/alertmanager",
        AM_AUTH,
        alertmanager_with_deep_extra(MAX_DEPTH + 10),
    ),
]


@pytest.mark.parametrize(("case", "path", "headers", "text"), DEEP, ids=[c[0] for c in DEEP])
async def test_deep_json_is_a_400_saying_so(make_client, case, path, headers, text):
    client = await make_client(directory=directory())
    before = await snapshot(client)
    response = await client.post(
        path, data=text.encode(), headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status == 400, await response.text()
    assert "nested deeper" in await response.text()
    assert await snapshot(client) == before


async def test_json_as_deep_as_the_limit_is_read(make_client):
    client = await make_client(directory=directory())
    text = alertmanager_with_deep_extra(MAX_DEPTH - 1)  # the webhook object is one level
    response = await client.post(
        "/api/v1/integrations/alertmanager", data=text.encode(), headers=AM_AUTH
    )
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("case", "path", "headers"),
    [
        # an API body: a few fields
        ("override", "/api/v1/schedules/primary/overrides", USER),
        # a ping's body is read and dropped, never more than the cap of it
        ("heartbeat", "/api/v1/heartbeats/nightly", {"Authorization": f"Bearer {HB_TOKEN}"}),
    ],
)
async def test_a_small_route_refuses_a_body_over_its_own_cap(make_client, case, path, headers):
    client = await make_client(directory=directory())
    before = await snapshot(client)
    body = json.dumps({"user": "bob", "pad": "x" * SMALL_BODY}).encode()
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 413
    assert str(SMALL_BODY) in (await response.json())["error"]
    assert await snapshot(client) == before


async def test_an_alertmanager_group_just_under_max_body_bytes_is_ingested(make_client):
    # Alertmanager never retries a 413: a group the limit admits must be read whole.
    limit = 256 * 1024
    client = await make_client(directory=directory(), server_max_body_bytes=str(limit))
    alerts, size = [], 0
    while True:
        alert = make_alert(f"host{len(alerts)}", starts_at=T0)
        alert["annotations"]["description"] = "d" * 1000
        grown = len(json.dumps(make_webhook([*alerts, alert])))
        if grown > limit:
            break
        alerts.append(alert)
        size = grown
    assert size > limit - 2048  # near the limit, not merely under it
    response = await client.post(
        "/api/v1/integrations/alertmanager", json=make_webhook(alerts), headers=AM_AUTH
    )
    assert response.status == 200, await response.text()
    listed = await client.get("/api/v1/incidents", headers=USER)
    [incident] = (await listed.json())["incidents"]
    assert incident["alert_count"] == len(alerts)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startsAt", "9999-12-31T23:59:59-14:00"),  # after datetime's last day in UTC
        ("endsAt", "9999-12-31T23:59:59.5-14:00"),
    ],
)
async def test_an_alertmanager_time_out_of_range_in_utc_is_a_400(make_client, field, value):
    client = await make_client(directory=directory())
    before = await snapshot(client)
    body = make_webhook([make_alert("db1")])
    body["alerts"][0][field] = value
    response = await client.post("/api/v1/integrations/alertmanager", headers=AM_AUTH, json=body)
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == f"alerts[0].{field}"
    assert await snapshot(client) == before
