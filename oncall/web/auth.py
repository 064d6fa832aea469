"""Credentials from `Authorization`: a bearer token, or HTTP Basic with the token as password."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from oncall.directory.model import Integration, User
from oncall.errors import Forbidden, Unauthorized
from oncall.web.keys import DIRECTORY


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


def require_integration(request: web.Request, type_: str) -> Integration:
    """Return the integration of `type_` the request authenticates as; raises Unauthorized."""
    token = presented_token(request)
    found = request.app[DIRECTORY].current.integration_for_token(type_, token) if token else None
    if found is None:
        raise Unauthorized("missing or invalid integration token", "Authorization")
    return found


def require_user(request: web.Request, *, allow_query_token: bool = False) -> User:
    """Return the user whose API token the request carries; raises Unauthorized.

    `allow_query_token` also accepts `?token=` (for calendar feeds, which cannot send
    headers); the access log never records query strings.
    """
    token = presented_token(request)
    if token is None and allow_query_token:
        token = request.rel_url.query.get("token")
    found = request.app[DIRECTORY].current.user_for_token(token) if token else None
    if found is None:
        raise Unauthorized("missing or invalid API token", "Authorization")
    return found


def require_admin(request: web.Request) -> User:
    """Return the admin user whose API token the request carries.

    Raises Unauthorized without a valid token, Forbidden when the user is a responder.
    """
    user = require_user(request)
    if not user.is_admin:
        raise Forbidden("this needs an admin's token")
    return user
