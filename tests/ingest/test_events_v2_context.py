"""Events v2 triggers keep custom_details, links and images structured: the API returns
them as JSON values, never as JSON text inside annotations; bad ones are refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from oncall.ingest.context import MAX_DETAILS_DEPTH
from tests.ingest.test_context import nested
from tests.ingest.test_events_v2 import ALICE, DIRECTORY, EV_TOKEN, incidents, send, trigger
from tests.support.db import snapshot
from tests.support.ui import log_in
from tests.web.test_incident_pages import ESCAPED, SCRIPT

DETAILS = {"free": "2%", "disks": [{"name": "sda", "used": 0.98}], "ok": False, "n": None}
LINKS = [
    {"href": "https://runbooks.example.com/disk", "text": "Runbook"},
    {"href": "https://grafana.example.com/d/disk"},
]
IMAGES = [
    {
        "src": "https://grafana.example.com/render/disk.png",
        "href": "https://grafana.example.com/d/disk",
        "alt": "Disk usage",
    }
]


def rich_trigger(**changes: Any) -> dict[str, Any]:
    body = trigger(**{"links": LINKS, "images": IMAGES, **changes})
    body["payload"]["custom_details"] = DETAILS
    return body


async def incident_of(client: Any) -> dict[str, Any]:
    [listed] = await incidents(client)
    response = await client.get(f"/api/v1/incidents/{listed['id']}", headers=ALICE)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_a_trigger_keeps_details_links_and_images_structured(make_client):
    client = await make_client(directory=DIRECTORY)
    assert (await send(client, rich_trigger()))[0] == 202
    [alert] = (await incident_of(client))["alerts"]
    assert alert["custom_details"] == DETAILS
    assert alert["links"] == [
        {"href": "https://runbooks.example.com/disk", "text": "Runbook"},
        {"href": "https://grafana.example.com/d/disk", "text": ""},
    ]
    assert alert["images"] == IMAGES
    # Not again as JSON text beside the summary.
    assert set(alert["annotations"]) == {"summary", "client"}


async def test_a_trigger_without_them_has_none(make_client):
    client = await make_client(directory=DIRECTORY)
    body = trigger()
    del body["payload"]["custom_details"]
    await send(client, body)
    [alert] = (await incident_of(client))["alerts"]
    assert (alert["custom_details"], alert["links"], alert["images"]) == (None, [], [])


async def test_details_may_be_any_json_value(make_client):
    client = await make_client(directory=DIRECTORY)
    body = trigger()
    body["payload"]["custom_details"] = "free: 2%"  # Alertmanager's template may send text
    await send(client, body)
    [alert] = (await incident_of(client))["alerts"]
    assert alert["custom_details"] == "free: 2%"


async def test_details_with_nul_are_stored_with_a_replacement_character(make_client):
    # PostgreSQL's jsonb refuses \u0000: the event is kept, the character replaced.
    client = await make_client(directory=DIRECTORY)
    body = trigger()
    body["payload"]["custom_details"] = {"a\u0000": "b\u0000"}
    assert (await send(client, body))[0] == 202
    [alert] = (await incident_of(client))["alerts"]
    assert alert["custom_details"] == {"a\ufffd": "b\ufffd"}


def _payload(**details: Any) -> dict[str, Any]:
    return {"summary": "x", "source": "x", "severity": "info", **details}


# (case, body, expected error)
BAD = [
    ("a link without href", trigger(links=[{"text": "t"}]), "'links[0].href' is missing"),
    ("an image not an object", trigger(images=["https://x"]), "'images[0]' must be an object"),
    (
        "details too deep",
        trigger(payload=_payload(custom_details=nested(MAX_DETAILS_DEPTH + 1))),
        "'payload.custom_details' is nested deeper",
    ),
    (
        "details too large",
        trigger(payload=_payload(custom_details={"blob": "x" * 70_000})),
        "'payload.custom_details' is larger than",
    ),
]


@pytest.mark.parametrize(("case", "body", "expected"), BAD, ids=[b[0] for b in BAD])
async def test_bad_context_gets_400_naming_it_and_writes_nothing(make_client, case, body, expected):
    client = await make_client(directory=DIRECTORY)
    before = await snapshot(client)
    status, answer = await send(client, body)
    assert status == 400 and answer["status"] == "invalid event"
    assert any(error.startswith(expected) for error in answer["errors"]), answer
    assert await snapshot(client) == before


async def test_an_acknowledge_with_links_changes_no_alert_context(make_client):
    client = await make_client(directory=DIRECTORY)
    await send(client, rich_trigger())
    ack = {"routing_key": EV_TOKEN, "event_action": "acknowledge", "dedup_key": "disk-db1"}
    assert (await send(client, {**ack, "links": [{"href": "https://other"}]}))[0] == 202
    [alert] = (await incident_of(client))["alerts"]
    assert alert["links"][0]["href"] == "https://runbooks.example.com/disk"


async def test_the_incident_page_shows_links_images_details_and_what_changed(make_client):
    client = await make_client(directory=DIRECTORY)
    await log_in(client)
    change = {
        "routing_key": EV_TOKEN,
        "payload": {"summary": f"Deployed {SCRIPT}", "source": "ci"},
        "links": [{"href": "https://ci.example.com/b/1", "text": "Build 1"}],
    }
    assert (await send(client, change, "/v2/change/enqueue"))[0] == 202
    body = rich_trigger(links=[*LINKS, {"href": "javascript:alert(1)", "text": "Bad"}])
    body["payload"]["custom_details"] = {"note": SCRIPT}
    await send(client, body)
    [listed] = await incidents(client)
    response = await client.get(f"/incidents/{listed['id']}")
    page = await response.text()
    assert response.status == 200, page
    assert (
        '<a href="https://runbooks.example.com/disk" rel="noopener noreferrer">Runbook</a>' in page
    )
    # An image is a link to the picture (img-src is 'self'), and to its href.
    src = "https://grafana.example.com/render/disk.png"
    assert f'<a href="{src}" rel="noopener noreferrer">Image: Disk usage</a>' in page
    assert "<img" not in page
    assert "<li>Bad (javascript:alert(1))</li>" in page and 'href="javascript:' not in page
    assert SCRIPT not in page
    assert f"&#34;note&#34;: &#34;{ESCAPED}&#34;" in page  # the details, escaped
    assert f"<strong>Deployed {ESCAPED}</strong> from ci" in page
    assert '<a href="https://ci.example.com/b/1" rel="noopener noreferrer">Build 1</a>' in page
