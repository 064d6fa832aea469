"""Limits count an IPv6 client by its /64, since it may use any address in it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from oncall.web.clients import client_block
from oncall.web.connections import ConnectionLimit, CountedProtocol, LogThrottle
from oncall.web.throttle import FAILURE_LIMIT, Throttle
from tests.support.factories import T0
from tests.support.roles import ALICE, responders_directory

WRONG = {"Authorization": "Bearer wrong-token-0123456789abcdefghijklmnopqrstuv"}


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("", ""),
        ("not an address: at all", "not an address: at all"),
    ],
)
def test_a_client_is_its_ipv4_address_or_its_ipv6_64(address, block):
    assert client_block(address) == block


def test_one_64_holds_the_connection_limit_whatever_addresses_it_uses():
    limit = ConnectionLimit(2)
    first, second, third = (f"2001:db8:1:2::{n}" for n in (1, 2, 3))
    assert limit.admit(client_block(first)) and limit.admit(client_block(second))
    assert not limit.admit(client_block(third))
    assert limit.admit(client_block("2001:db8:1:3::1"))  # the next /64 is another client


def test_one_64_shares_its_failed_logins():
    throttle = Throttle(limit=3)
    for n in range(3):
        throttle.failed(client_block(f"2001:db8:1:2::{n}"), T0)
    assert throttle.retry_after(client_block("2001:db8:1:2::ffff"), T0) is not None
    assert throttle.retry_after(client_block("2001:db8:1:3::1"), T0) is None


class FakeTransport(asyncio.Transport):
    """Just enough of a connection from an IPv6 peer for the counting protocol."""

    def __init__(self, peer: str) -> None:
        super().__init__()
        self.peer = peer
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.peer, 40000, 0, 0) if name == "peername" else default

    def close(self) -> None:
        self.closed = True


def test_the_connection_count_takes_a_peer_by_its_64():
    limit, made = ConnectionLimit(2), []
    transports = [FakeTransport(f"2001:db8:1:2::{n}") for n in (1, 2, 3)]
    for transport in transports:
        protocol = CountedProtocol(
            lambda: made.append(1) or asyncio.Protocol(), limit, LogThrottle()
        )
        protocol.connection_made(transport)
    assert [t.closed for t in transports] == [False, False, True] and len(made) == 2


async def test_behind_a_trusted_proxy_an_ipv6_64_is_throttled_as_one_client(make_client):
    client = await make_client(directory=responders_directory(), server_trusted_proxies="127.0.0.1")
    for n in range(FAILURE_LIMIT):
        forwarded = {"X-Forwarded-For": f"2001:db8:1:2::{n + 1:x}"}
        response = await client.get("/api/v1/incidents", headers={**WRONG, **forwarded})
        assert response.status == 401
    fresh = {"X-Forwarded-For": "2001:db8:1:2:ffff::1"}  # another address of the same /64
    assert (await client.get("/api/v1/incidents", headers={**ALICE, **fresh})).status == 429
    other = {"X-Forwarded-For": "2001:db8:1:3::1"}
    assert (await client.get("/api/v1/incidents", headers={**ALICE, **other})).status == 200
