"""An SMTP server that accepts the connection and never says a word: the e-mail page times
out after `[smtp] timeout` and is scheduled for a retry, while the incident's other pages
and the API go on without waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from oncall.clock import system_clock
from oncall.web.keys import RUNTIME
from tests.support.factories import ALICE_TOKEN, AM_AUTH, AM_TOKEN, make_alert, make_webhook
from tests.support.receivers import HttpReceiver
from tests.support.waiting import eventually

ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
SMTP_TIMEOUT = 3.0  # seconds, as `[smtp] timeout` below: room for the API read meanwhile
# Far beyond the test: the first retry is scheduled, never run, so the row stays at attempt 1.
RETRY_BASE = timedelta(hours=1)


class SilentSmtp:
    """A TCP server that accepts every connection and never writes (no SMTP greeting), like
    a mail server stuck before its banner or a firewall that completes the handshake."""

    def __init__(self) -> None:
        self.accepted = asyncio.Event()
        self.client_left = asyncio.Event()  # the client gave up and closed the connection
        self.accepted_at = self.left_at = 0.0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self._writers.append(writer)
        self.accepted_at = loop.time()
        self.accepted.set()
        await reader.read()  # everything until the client closes; it sends nothing first
        self.left_at = loop.time()
        self.client_left.set()
        writer.close()

    def close(self) -> None:
        """Close every connection still open."""
        for writer in self._writers:
            writer.close()


@pytest.fixture
async def silent_smtp() -> AsyncIterator[SilentSmtp]:
    target = SilentSmtp()
    server = await asyncio.start_server(target.handle, "127.0.0.1", 0)
    target.port = server.sockets[0].getsockname()[1]
    yield target
    target.close()
    server.close()
    await server.wait_closed()


class SignallingReceiver(HttpReceiver):
    """An HTTP receiver that also sets `arrived` on its first request."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        response = await super().handle(request)
        self.arrived.set()
        return response


async def within(event: asyncio.Event, what: str) -> None:
    """Return once `event` is set; raises AssertionError naming `what` after a bound far
    longer than the SMTP timeout and far shorter than aiosmtplib's own default (60 s)."""
    try:
        await asyncio.wait_for(event.wait(), 10 * SMTP_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def directory(receiver_url: str) -> str:
    # The e-mail contact comes first: were pages sent one after another, the webhook would
    # wait for the silent server.
    return f"""
integrations: [{{name: prometheus, type: alertmanager, token: "{AM_TOKEN}"}}]
users:
  - name: alice
    api_token: "{ALICE_TOKEN}"
    contacts:
      - {{type: email, to: alice@example.com}}
      - {{type: webhook, url: "{receiver_url}"}}
policies: [{{name: p, levels: [{{notify: ["user:alice"], escalate_after: 1h}}]}}]
routes: [{{policy: p}}]
"""


async def email_row(client: Any) -> dict[str, Any]:
    """Return the incident's e-mail page as `GET /api/v1/notifications` shows it."""
    response = await client.get("/api/v1/notifications", headers=ALICE)
    assert response.status == 200
    [row] = [n for n in (await response.json())["notifications"] if n["contact_type"] == "email"]
    return row


async def test_a_silent_smtp_server_times_out_and_is_retried_without_holding_up_others(
    make_client, aiohttp_server, silent_smtp
):
    receiver = SignallingReceiver()
    server = await aiohttp_server(receiver.app())
    client = await make_client(
        directory=directory(str(server.make_url("/hook"))),
        clock=system_clock,
        smtp_host="127.0.0.1",
        smtp_port=str(silent_smtp.port),
        smtp_timeout=f"{int(SMTP_TIMEOUT * 1000)}ms",
    )
    client.app[RUNTIME].notifier.retry_base = RETRY_BASE
    body = make_webhook([make_alert("db1")])
    response = await client.post("/api/v1/integrations/alertmanager", json=body, headers=AM_AUTH)
    assert response.status == 200

    await within(receiver.arrived, "the webhook page")
    assert not silent_smtp.client_left.is_set(), "the webhook waited for the SMTP attempt"
    # The API answers meanwhile too, and the e-mail attempt is not recorded yet.
    row = await email_row(client)
    assert not silent_smtp.client_left.is_set(), "the API waited for the SMTP attempt"
    assert row["status"] == "pending" and row["attempt_log"] == []

    await within(silent_smtp.accepted, "the SMTP connection")
    await within(silent_smtp.client_left, "the SMTP client to give up")
    # The client gave up because of its timeout, not before it.
    assert silent_smtp.left_at - silent_smtp.accepted_at >= SMTP_TIMEOUT * 0.9

    async def recorded() -> dict[str, Any] | None:
        # Both halves: on PostgreSQL the listing reads the row and its attempts in two
        # statements, so one can show the recorded attempt while the other does not yet.
        row = await email_row(client)
        return row if row["attempt_log"] and row["last_error"] else None

    row = await eventually(recorded, what="the e-mail attempt recorded")
    assert row["status"] == "pending" and row["attempts"] == 1
    [attempt] = row["attempt_log"]
    assert attempt["outcome"] == "retry" and "Timeout" in attempt["error"]
    assert attempt["duration_ms"] >= SMTP_TIMEOUT * 1000 * 0.9
    assert row["next_attempt_at"] is not None
    next_attempt = datetime.fromisoformat(row["next_attempt_at"])
    assert next_attempt >= datetime.fromisoformat(attempt["at"]) + RETRY_BASE * 0.9
    # The webhook page of the same incident was delivered, once.
    assert len(receiver.requests) == 1
