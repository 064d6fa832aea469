"""Failed-authentication throttling: ten wrong tokens from one address, and that address
is refused (429, Retry-After) until the window ends, even with a right token; other
addresses, requests without a token and successful ones are not affected."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from oncall.errors import ConfigError
from oncall.settings import load_settings
from oncall.web.throttle import (
    FAILURE_LIMIT,
    FAILURE_WINDOW,
    Failures,
    Throttle,
    client_of,
    refused_for,
)
from tests.support.factories import AM_AUTH, T0, make_alert, make_webhook
from tests.support.roles import ADMIN, ALICE, responders_directory, roles_directory

WRONG = {"Authorization": "Bearer wrong-token-0123456789abcdefghijklmnopqrstuv"}
WEBHOOK = make_webhook([make_alert("db1")])

# (what, method, path, right credential, body): a route of each kind of a person's
# credential check.
ROUTES = [
    ("a user's route", "GET", "/api/v1/incidents", ALICE, None),
    ("an admin's route", "GET", "/api/v1/audit", ADMIN, None),
]
EV_TOKEN = "ev-token-0123456789abcdefghijklmnopqrstuv"


async def status_from(
    client: Any, address: str, method: str, path: str, headers: dict[str, str], body: Any
) -> int:
    """Return the status of one request sent from the local address `address`."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, client.make_url(path), headers=headers, json=body) as response,
    ):
        return response.status


@pytest.mark.parametrize(
    ("what", "method", "path", "right", "body"), ROUTES, ids=[r[0] for r in ROUTES]
)
async def test_ten_wrong_tokens_and_the_address_is_refused_until_the_window_ends(
    make_client, clock, what, method, path, right, body
):
    # The directory has an admin only where one is needed: the others run on the code
    # from before roles too.
    directory = roles_directory() if right is ADMIN else responders_directory()
    client = await make_client(directory=directory)
    for _ in range(FAILURE_LIMIT):
        response = await client.request(method, path, headers=WRONG, json=body)
        assert response.status == 401
    response = await client.request(method, path, headers=right, json=body)
    assert response.status == 429
    assert int(response.headers["Retry-After"]) == FAILURE_WINDOW.total_seconds()
    assert "too many failed" in (await response.json())["error"]
    # X-Forwarded-For is anybody's to set: it does not make another address.
    spoofed = {**right, "X-Forwarded-For": "203.0.113.7"}
    assert (await client.request(method, path, headers=spoofed, json=body)).status == 429
    # Another address (all of 127.0.0.0/8 is loopback) is not affected.
    assert await status_from(client, "127.0.0.2", method, path, right, body) in (200, 202)
    clock.advance(FAILURE_WINDOW - timedelta(seconds=1))
    response = await client.request(method, path, headers=right, json=body)
    assert (response.status, response.headers["Retry-After"]) == (429, "1")
    clock.advance(timedelta(seconds=1))
    assert (await client.request(method, path, headers=right, json=body)).status in (200, 202)


async def test_wrong_feed_secrets_count_as_failures(make_client):
    client = await make_client(directory=roles_directory())
    response = await client.post("/api/v1/users/alice/calendar-feed", headers=ALICE)
    path = str((await response.json())["feeds"]["primary"]).removeprefix("http://localhost:8080")
    for number in range(FAILURE_LIMIT):
        assert (await client.get(f"/feeds/alice/guess-{number}/primary.ics")).status == 404
    assert (await client.get(path)).status == 429


async def test_requests_without_a_token_and_right_ones_are_not_counted(make_client):
    client = await make_client(directory=responders_directory())
    for _ in range(3 * FAILURE_LIMIT):
        assert (await client.get("/api/v1/incidents")).status == 401
        assert (await client.get("/api/v1/incidents", headers=ALICE)).status == 200


async def test_behind_a_trusted_proxy_each_forwarded_client_is_throttled_alone(make_client):
    client = await make_client(directory=responders_directory(), server_trusted_proxies="127.0.0.1")
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(FAILURE_LIMIT):
        response = await client.get("/api/v1/incidents", headers={**WRONG, **guesser})
        assert response.status == 401
    other = {"X-Forwarded-For": "203.0.113.8"}
    assert (await client.get("/api/v1/incidents", headers={**ALICE, **other})).status == 200
    assert (await client.get("/api/v1/incidents", headers={**ALICE, **guesser})).status == 429
    # A hop the guesser writes itself comes before the one the proxy appends.
    forged = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}
    assert (await client.get("/api/v1/incidents", headers={**ALICE, **forged})).status == 429


def test_trusted_proxies_must_be_ip_addresses():
    with pytest.raises(ConfigError, match=r"trusted_proxies"):
        load_settings({"ONCALL_SETTINGS": "/dev/null", "ONCALL_SERVER_TRUSTED_PROXIES": "proxy"})
    settings = load_settings(
        {"ONCALL_SETTINGS": "/dev/null", "ONCALL_SERVER_TRUSTED_PROXIES": "10.0.0.1, ::1"}
    )
    assert settings.server.trusted_proxies == {"10.0.0.1", "::1"}


# Pure: the throttle's decisions on its state and `now`.

PROXY = frozenset({"10.0.0.1", "10.0.0.2"})
# (what, peer, X-Forwarded-For values, client)
CLIENTS = [
    ("a direct client, whatever it claims", "198.51.100.1", ["203.0.113.7"], "198.51.100.1"),
    ("behind the proxy", "10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("a hop the client wrote is ignored", "10.0.0.1", ["1.2.3.4, 203.0.113.7"], "203.0.113.7"),
    ("two proxies in a row", "10.0.0.1", ["203.0.113.7, 10.0.0.2"], "203.0.113.7"),
    ("several header lines", "10.0.0.1", ["1.2.3.4", "203.0.113.7"], "203.0.113.7"),
    ("the proxy's own request", "10.0.0.1", [], "10.0.0.1"),
]


@pytest.mark.parametrize(
    ("what", "peer", "forwarded", "client"), CLIENTS, ids=[c[0] for c in CLIENTS]
)
def test_the_client_is_the_nearest_address_that_is_not_a_trusted_proxy(
    what, peer, forwarded, client
):
    assert client_of(peer, forwarded, PROXY) == client


def test_the_limit_refuses_only_from_its_count_on_and_only_within_the_window():
    window = timedelta(minutes=1)
    assert refused_for(None, T0, 3, window) is None
    assert refused_for(Failures(T0, 2), T0, 3, window) is None
    assert refused_for(Failures(T0, 3), T0 + timedelta(seconds=20), 3, window) == timedelta(
        seconds=40
    )
    assert refused_for(Failures(T0, 3), T0 + window, 3, window) is None


def test_a_new_window_begins_with_the_first_failure_after_the_last_one_ended():
    throttle = Throttle(limit=2, window=timedelta(minutes=1))
    throttle.failed("a", T0)
    throttle.failed("a", T0 + timedelta(seconds=59))
    assert throttle.retry_after("a", T0 + timedelta(seconds=59)) == 1
    throttle.failed("a", T0 + timedelta(seconds=61))  # a new window: one failure so far
    assert throttle.retry_after("a", T0 + timedelta(seconds=61)) is None


def test_memory_stays_bounded_by_forgetting_the_addresses_that_failed_longest_ago():
    throttle = Throttle(limit=1, max_addresses=3)
    for number in range(10):
        throttle.failed(f"10.0.0.{number}", T0)
    assert len(throttle) == 3
    assert throttle.retry_after("10.0.0.0", T0) is None
    assert throttle.retry_after("10.0.0.9", T0) == 60
    # An address whose window has ended is forgotten when it next asks.
    assert throttle.retry_after("10.0.0.9", T0 + FAILURE_WINDOW) is None
    assert len(throttle) == 2


def events_directory() -> str:
    """The responders' directory with an Events v2 integration."""
    return responders_directory().replace(
        "integrations:\n",
        f'integrations:\n  - {{name: pd, type: events_v2, token: "{EV_TOKEN}"}}\n',
    )


def event(routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db1", "severity": "critical"},
    }


async def test_wrong_ingest_tokens_are_throttled_and_the_right_one_still_delivers(make_client):
    """A misconfigured sender on the same host (or behind the same proxy) must not hold up
    the alerts of the right one: wrong tokens are refused 429 once over the limit, the
    right token is accepted throughout."""
    client = await make_client(directory=events_directory())
    path = "/api/v1/integrations/alertmanager"
    for _ in range(FAILURE_LIMIT):
        assert (await client.post(path, headers=WRONG, json=WEBHOOK)).status == 401
    response = await client.post(path, headers=WRONG, json=WEBHOOK)
    assert (response.status, response.headers["Retry-After"]) == (429, "60")
    assert (await client.post(path, headers=AM_AUTH, json=WEBHOOK)).status == 200
    # Events v2's credential is the routing key in the body: counted the same way
    response = await client.post("/v2/enqueue", json=event("wrong-key-0123456789abcdefghijklmn"))
    assert response.status == 429
    assert (await response.json())["status"] == "throttle event"
    assert (await client.post("/v2/enqueue", json=event(EV_TOKEN))).status == 202


async def test_wrong_routing_keys_count_as_failed_logins(make_client):
    client = await make_client(directory=events_directory())
    for number in range(FAILURE_LIMIT):
        response = await client.post("/v2/enqueue", json=event(f"guess-{number:028d}"))
        assert response.status == 400
    assert (await client.get("/api/v1/incidents", headers=ALICE)).status == 429
