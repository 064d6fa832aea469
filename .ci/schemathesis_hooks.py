"""schemathesis hooks for .ci/schemathesis: each generated case comes from its own client.

The service refuses an address for a minute after ten wrong credentials
(oncall.web.throttle, tested in tests/web/test_throttle.py), and the fuzzer sends wrong ones
on purpose (feed secrets, routing keys); from one address, every operation would soon
answer 429 and little else would be tested. The service under test trusts 127.0.0.1 as a
reverse proxy (`[server] trusted_proxies`), so each case names its own client in
X-Forwarded-For: an IPv6 documentation address (RFC 3849) of its own /64, the block the
throttle counts an IPv6 client by. No traffic goes to these addresses; they are only
header values.
"""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis

_clients = itertools.count(1)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    number = next(_clients)
    case.headers["X-Forwarded-For"] = f"2001:db8:{number >> 16 & 0xFFFF:x}:{number & 0xFFFF:x}::1"
