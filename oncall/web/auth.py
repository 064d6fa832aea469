"""Credentials from `Authorization`: a bearer token, or HTTP Basic with the token as password.

Every check counts a wrong token against the client's address (`Throttle`); an address
over the limit is answered 429 before a person's credential is looked at (an alert
source's right token is still accepted: see `require_integration`). The address is the
connection's peer; X-Forwarded-For is written by whoever connects, so it is only read
from the reverse proxies `[server] trusted_proxies` names.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from oncall.directory.model import Integration, User
from oncall.errors import Forbidden, TooManyRequests, Unauthorized
from oncall.web.clients import client_block
from oncall.web.keys import CLOCK, DIRECTORY, RUNTIME, SETTINGS
from oncall.web.throttle import client_of

_Found = TypeVar("_Found")


def presented_token(request: web.Request) -> str | None:
    """Return the token in the Authorization header, or None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def client_address(request: web.Request) -> str:
    """Return the client failures are counted under: the connection's peer, or the client
    a trusted proxy names; an IPv6 client by its /64 (`client_block`)."""
    peer = request.remote or ""
    trusted = request.app[SETTINGS].server.trusted_proxies
    if peer not in trusted:  # the usual case, without reading any header
        return client_block(peer)
    return client_block(client_of(peer, request.headers.getall("X-Forwarded-For", []), trusted))


def refuse_if_throttled(request: web.Request) -> None:
    """Raise TooManyRequests when the client's address failed too often recently."""
    if RUNTIME not in request.app:
        return
    wait = request.app[RUNTIME].throttle.retry_after(client_address(request), request.app[CLOCK]())
    if wait is not None:
        raise TooManyRequests(
            f"too many failed authentications from this address; retry in {wait} s", wait
        )


def count_failure(request: web.Request) -> None:
    """Count one wrong credential presented by the client's address."""
    if RUNTIME in request.app:
        request.app[RUNTIME].throttle.failed(client_address(request), request.app[CLOCK]())


def _checked(request: web.Request, find: Callable[[str], _Found | None]) -> _Found | None:
    """Return what `find` gives for the presented token, or None without a token or for a
    wrong one (counted as a failure); raises TooManyRequests for a throttled address."""
    refuse_if_throttled(request)
    token = presented_token(request)
    if token is None:
        return None  # nothing was guessed: not a failure
    found = find(token)
    if found is None:
        count_failure(request)
    return found


def require_integration(request: web.Request, *types: str) -> Integration:
    """Return the integration of one of `types` the request authenticates as; raises
    Unauthorized, or TooManyRequests for a wrong token from a throttled address.

    Unlike a person's, an alert source's right token is accepted from a throttled address:
    another sender's wrong token on the same host (or behind the same proxy) must never
    hold up alerts. Its tokens are machine-made and at least 32 characters, so guessing
    stays hopeless without the lockout.
    """
    token = presented_token(request)
    found = None
    if token:
        directory = request.app[DIRECTORY].current
        # Every type is looked at, so the time taken does not tell which one matched.
        matches = [directory.integration_for_token(type_, token) for type_ in types]
        found = next((match for match in matches if match is not None), None)
    if found is None:
        if token is not None:
            refuse_if_throttled(request)
            count_failure(request)
        raise Unauthorized("missing or invalid integration token", "Authorization")
    return found


def require_user(request: web.Request) -> User:
    """Return the user whose API token the request's `Authorization` carries; raises
    Unauthorized, or TooManyRequests for a throttled address."""
    found = _checked(request, request.app[DIRECTORY].current.user_for_token)
    if found is None:
        raise Unauthorized("missing or invalid API token", "Authorization")
    return found


def require_admin(request: web.Request) -> User:
    """Return the admin user whose API token the request carries.

    Raises Unauthorized without a valid token, Forbidden when the user is a responder,
    TooManyRequests for a throttled address.
    """
    user = require_user(request)
    if not user.is_admin:
        raise Forbidden("this needs an admin's token")
    return user


def require_self_or_admin(request: web.Request, name: str) -> User:
    """Return the user of the request's token when it is `name` or an admin.

    Raises Unauthorized, TooManyRequests, or Forbidden for a responder acting for another.
    """
    user = require_user(request)
    if user.name != name and not user.is_admin:
        raise Forbidden("a responder may only do this for themselves; this needs an admin's token")
    return user
