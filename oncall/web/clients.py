"""Who a client is, for limits counted per client: its address, or for IPv6 its /64. Pure.

An IPv6 client is usually given a whole /64 (a home line, a cloud instance), and picks
any of its 2^64 addresses for each connection: counted per address, it would never reach
a per-client limit. An IPv4-mapped IPv6 address is the IPv4 client it maps.
"""

from __future__ import annotations

import ipaddress

IPV6_PREFIX = 64


def client_block(address: str) -> str:
    """Return the key a client's limits are counted under: an IPv4 address as it is, an
    IPv6 address as its /64 network (`2001:db8:1:2::/64`), anything unparsable as it is."""
    if ":" not in address:  # IPv4, or no address at all: the common case, without parsing
        return address
    try:
        parsed = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
