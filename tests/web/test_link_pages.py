"""A signed acknowledge link opened in a browser logged in to the web UI leads, after its
action, to the incident's page; elsewhere it answers its own page as before."""

from __future__ import annotations

from typing import Any

from yarl import URL

from oncall.web.keys import CLOCK, RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, make_alert, make_webhook
from tests.support.ui import log_in


async def _link(client: Any, action: str) -> tuple[int, str]:
    response = await client.post(
        "/api/v1/integrations/alertmanager",
        json=make_webhook([make_alert("db1")]),
        headers=AM_AUTH,
    )
    [incident_id] = (await response.json())["incidents"]
    app = client.app
    url = app[RUNTIME].notifier.link(incident_id, action, "alice", app[CLOCK]())
    return incident_id, URL(url).path


async def _status(client: Any, incident_id: int) -> str:
    response = await client.get(
        f"/api/v1/incidents/{incident_id}", headers={"Authorization": f"Bearer {ALICE_TOKEN}"}
    )
    return str((await response.json())["status"])


async def test_a_link_posted_from_a_logged_in_browser_leads_to_the_incident_page(client):
    incident_id, path = await _link(client, "acknowledge")
    await log_in(client, "alice")
    response = await client.post(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == f"/incidents/{incident_id}"
    assert await _status(client, incident_id) == "acknowledged"


async def test_a_link_posted_without_a_session_answers_its_own_page(client):
    incident_id, path = await _link(client, "acknowledge")
    response = await client.post(path, allow_redirects=False)
    assert response.status == 200
    assert f"Incident #{incident_id} is acknowledged" in await response.text()
