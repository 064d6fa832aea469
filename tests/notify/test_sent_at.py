"""A webhook page says when its attempt began, so a receiver can tell an old page that
arrives late (a retry, a resend after a crash) from a new one."""

from __future__ import annotations

import json
from typing import Any

from oncall.clock import isoformat
from tests.support.factories import ALICE_TOKEN, AM_AUTH, AM_TOKEN, make_alert, make_webhook
from tests.support.receivers import HttpReceiver
from tests.support.waiting import eventually


async def test_a_webhook_page_carries_the_time_its_attempt_began(
    make_client: Any, clock: Any, receiver: HttpReceiver
) -> None:
    hook = f'{{type: webhook, url: "{receiver.url}"}}'
    directory = f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - {{name: alice, api_token: "{ALICE_TOKEN}", contacts: [{hook}]}}
policies: [{{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}]
routes: [{{policy: p}}]
"""
    client = await make_client(directory=directory)
    body = make_webhook([make_alert("db1")])
    response = await client.post("/api/v1/integrations/alertmanager", json=body, headers=AM_AUTH)
    assert response.status == 200

    async def arrived() -> bool:
        return bool(receiver.requests)

    await eventually(arrived, what="the page")
    assert json.loads(receiver.requests[0].body)["sent_at"] == isoformat(clock.now)
